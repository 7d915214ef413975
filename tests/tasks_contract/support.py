"""What the ported suites run with here: the worker, run in this process, and the stored
results that stand in for a backend's in-memory list.

Not ported: this project's own code.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connection
from django.tasks import TaskResult, TaskResultStatus, default_task_backend
from django.utils.crypto import get_random_string

from async_queue import Job
from async_queue.contrib.tasks.backend import STATUS
from async_queue.contrib.tasks.runner import META_KEY
from async_queue.sql import dialect

BACKEND = "async_queue.backends.QueueBackend"

# Statements of one in-process ``flush_queue`` run (``run_worker``), pinned where
# django-tasks-db pins its worker's (8 per task, 3 with nothing to do). A run reads
# the running jobs once (crash recovery) and the database schedules once (periodic
# jobs), and ends with a claim that finds nothing.
# A task costs its claim, its transaction (BEGIN, the fenced UPDATE, COMMIT) and the
# backend's read of the finish time for ``task_finished``; a failing one its claim,
# the rolled-back transaction, the failure's (BEGIN, UPDATE, the JobError, COMMIT)
# and the backend's read of its errors (with the finish time).
RUN_NOTHING = 3
PER_TASK = 5
PER_FAILING_TASK = 8
RUN_ONE = RUN_NOTHING + PER_TASK
RUN_ONE_FAILING = RUN_NOTHING + PER_FAILING_TASK


def run_worker(**options: Any) -> None:
    """Run every due job (``flush_queue``), in this process, as a worker would."""
    options.setdefault("verbosity", 0)
    call_command("flush_queue", **options)


async def arun_worker(**options: Any) -> None:
    await sync_to_async(run_worker)(**options)


def prepare_worker_session() -> None:
    """What a worker does once per connection (PostgreSQL: one SET), done before counting."""
    dialect(connection.alias).prepare_session(pooled=False)


def stored_results() -> list[TaskResult]:
    """Every stored task's result, oldest first: what a backend that keeps its results in
    memory (Django's ``DummyBackend.results``) holds."""
    return [
        default_task_backend.get_result(str(pk))
        for pk in Job.objects.order_by("id").values_list("pk", flat=True)
    ]


def task_result(job: Job) -> TaskResult:
    """The result a stored task's row stands for."""
    return default_task_backend.result_for(job)


def get_random_id() -> str:
    return get_random_string(32)


class StoredTask:
    """A task's row, read through the names of django-tasks-db's ``DBTaskResult``."""

    def __init__(self, job: Job) -> None:
        self.job = job

    @classmethod
    def create(cls, task_path: str, args: list[Any], kwargs: dict[str, Any]) -> StoredTask:
        """A row written directly, as the backend would write it (one attempt)."""
        job = Job.objects.create(
            name=task_path,
            args=args,
            kwargs=kwargs,
            meta={META_KEY: default_task_backend.alias},
            max_attempts=1,
        )
        return cls(job)

    @classmethod
    def get(cls, id: str) -> StoredTask:
        return cls(Job.objects.get(pk=int(id)))

    def refresh_from_db(self) -> None:
        self.job.refresh_from_db()

    @property
    def status(self) -> TaskResultStatus:
        return STATUS[self.job.status]

    @property
    def traceback(self) -> str:
        error = self.job.errors.last()
        return error.traceback if error is not None else ""

    @property
    def worker_ids(self) -> list[str]:
        workers = list(self.job.errors.values_list("worker", flat=True))
        if self.job.attempts > len(workers) and self.job.worker:
            workers.append(self.job.worker)
        return workers
