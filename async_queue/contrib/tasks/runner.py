"""Running a ``django.tasks`` ``Task`` as a job: its call, and its context.

Needed wherever a Task object is declared at a dotted path, with or without the
backend in ``TASKS``; so it imports neither the backend nor scheduling, and the
models only when a task runs (``callables`` imports this module, and the
backend must load without the models: see ``QueueBackend.check``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    from ...models import Job

# What the backend records in a job's meta: the alias of the backend that enqueued
# it, and the task's requested ``run_after`` (ISO 8601), which the row's own
# ``run_after`` cannot keep (it is the database's "now" when none was asked for,
# and moves on with each retry).
META_KEY = "django_task_backend"
RUN_AFTER_KEY = "django_task_run_after"


def is_task(target: Any) -> TypeGuard[Any]:
    """Whether ``target`` is a ``django.tasks`` ``Task`` (without importing django.tasks)."""
    return type(target).__module__ == "django.tasks.base" and type(target).__name__ == "Task"


def backend_of(job: Job) -> Any:
    """The queue's django.tasks backend that enqueued ``job``, if one did."""
    from django.tasks import task_backends

    alias = job.meta.get(META_KEY) if isinstance(job.meta, dict) else None
    if alias is None:
        return None
    backend = task_backends[alias]
    return backend if getattr(backend, "stores_jobs", False) else None


def task_context(job: Job | None, task: Any) -> Any:
    """The ``TaskContext`` a ``takes_context`` task receives, for the running job."""
    from django.tasks.base import TaskContext

    if job is None:
        raise RuntimeError("A task that takes a context can only run as a job.")
    backend = backend_of(job)
    if backend is None:
        raise RuntimeError(f"Job {job.pk} was not enqueued through a django.tasks backend.")
    return TaskContext(task_result=backend.result_of_task(task, job))


def task_runner(task: Any) -> Callable[..., Any]:
    """A plain callable that runs ``task`` (with its context if it takes one).

    Its return value is held to Django's contract, as Django's immediate backend
    holds it: ``normalize_json`` makes it JSON types (a tuple a list), and a value
    it refuses fails the task with its ``TypeError`` ("Unsupported type: ...").
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        from django.utils.json import normalize_json  # Django 6.0+, as tasks are

        from ...progress import current_job

        if task.takes_context:
            value = task.call(task_context(current_job(), task), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        return normalize_json(value)

    return run
