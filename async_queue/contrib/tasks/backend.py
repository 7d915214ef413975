"""A ``django.tasks`` backend (Django 6.0+) that stores tasks as Job rows.

    TASKS = {"default": {
        "BACKEND": "async_queue.contrib.tasks.QueueBackend",  # or async_queue.backends.QueueBackend
        "QUEUES": ["default", "mail"],          # optional: the queue names tasks may use
        "OPTIONS": {"MAX_ATTEMPTS": 1, "ON_COMMIT": False, "DATABASE": None},  # the defaults
    }}

``@task`` functions' ``.enqueue()``, ``.aenqueue()`` and ``.using(priority=,
queue_name=, run_after=)`` write Job rows, and ``flush_queue`` runs them (``async
def`` and ``takes_context`` tasks too), each in the job's transaction. The
contract is Django's, as its own backends keep it:

- arguments and return values are held to ``normalize_json`` (``values``,
  ``runner``); a task fails on its first exception unless it, its function's
  ``@async_queue.job`` or ``MAX_ATTEMPTS`` allows more attempts; ``task_finished``
  is sent for every final state (a cancelled task ends FAILED);
- ``enqueue()`` returns a ``TaskResult`` with its id: the row is written at once,
  inside the caller's transaction if there is one (it commits or rolls back with
  it, and no worker sees it before). ``ON_COMMIT: True`` writes it when the
  transaction commits instead; on PostgreSQL the id is then taken from the
  table's sequence up front, on SQLite (no sequence) the row is written at once;
- ``get_result(id)`` rebuilds the same ``TaskResult``: READY (queued), RUNNING,
  SUCCESSFUL, FAILED (failed or cancelled), one error per failed attempt, the
  worker of each attempt.

The models and ``scheduling`` are imported when used, never when this module is
imported: the backend must load, and ``check()`` say what is missing, in a
project that has not installed ``async_queue``.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.db import connections, router, transaction
from django.db.models import F
from django.tasks import TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import Task, TaskError, TaskResult
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started

from ...callables import declared_options, find
from ...exceptions import JobNotAllowed
from ...signals import job_cancelled, job_failed, job_started, job_succeeded
from ...states import Status
from .runner import META_KEY, RUN_AFTER_KEY, backend_of
from .values import normalized_arguments

if TYPE_CHECKING:
    from ...models import Job, JobError

BACKEND = "async_queue.contrib.tasks.QueueBackend"
OPTIONS = ("DATABASE", "MAX_ATTEMPTS", "ON_COMMIT")
MAX_ID = 2**63 - 1  # the largest id a row can have (a BigAutoField)

STATUS: dict[str, TaskResultStatus] = {
    Status.QUEUED: TaskResultStatus.READY,
    Status.RUNNING: TaskResultStatus.RUNNING,
    Status.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    Status.FAILED: TaskResultStatus.FAILED,
    Status.CANCELLED: TaskResultStatus.FAILED,
}


class QueueBackend(BaseTaskBackend):
    supports_defer = True
    supports_priority = True
    supports_get_result = True
    supports_async_task = True
    stores_jobs = True  # what ``runner.backend_of`` recognises

    def _database(self, for_write: bool) -> str:
        from ...models import Job

        route = router.db_for_write if for_write else router.db_for_read
        return self.options.get("DATABASE") or route(Job)

    def max_attempts(self, task: Task) -> int:
        """The attempts ``task`` gets: the task's own ``max_attempts`` where the running
        Django has one, else its function's ``@async_queue.job(max_attempts=...)``, else
        the ``MAX_ATTEMPTS`` option: by default 1, so that a failure is final, as with
        Django's own backends."""
        declared = declared_options(task.func)
        for value in (
            getattr(task, "max_attempts", None),
            declared.max_attempts if declared is not None else None,
        ):
            if value is not None:
                return value
        return self.options.get("MAX_ATTEMPTS", 1)

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        from ...scheduling import _write, build_job

        self.validate_task(task)
        args, kwargs = normalized_arguments(args, kwargs)
        meta = {META_KEY: self.alias}
        if task.run_after is not None:
            meta[RUN_AFTER_KEY] = task.run_after.isoformat()
        declared = declared_options(task.func)
        job = build_job(
            task.module_path,
            args,
            kwargs,
            run_after=task.run_after,
            priority=task.priority,
            queue=task.queue_name,
            meta=meta,
            max_attempts=self.max_attempts(task),
            timeout=declared.timeout if declared is not None else None,
        )
        using = self._database(for_write=True)
        at_commit = self._reserve(job, using)
        _write([job], using, on_commit=at_commit)
        # Just written (or to be): no attempt, so no error to read.
        result = self._result(task, job, errors=[])
        if at_commit:
            # After schedule()'s own hook, which writes the row.
            transaction.on_commit(partial(self._written, job, result), using=using, robust=True)
        else:
            task_enqueued.send(type(self), task_result=result)
        return result

    def _reserve(self, job: Job, using: str) -> bool:
        """Whether the row waits for the caller's transaction to commit (``ON_COMMIT``).

        It can only on PostgreSQL, where one statement takes the row's id from the
        table's sequence, and the enqueue time with it, so that the ``TaskResult``
        has both before the row exists.
        """
        connection = connections[using]
        if not self.options.get("ON_COMMIT", False) or not connection.in_atomic_block:
            return False
        from ...sql import dialect  # imports the models: only once the backend is used

        reserved = dialect(using).reserve_job_id()
        if reserved is None:
            return False  # no sequence to take an id from (SQLite): written now
        job.pk, job.created_at = reserved
        return True

    def _written(self, job: Job, result: TaskResult) -> None:
        if job.pk is None:  # its INSERT failed after the commit (logged by scheduling)
            return
        task_enqueued.send(type(self), task_result=result)

    def get_result(self, result_id: str) -> TaskResult:
        from ...models import Job

        # Only the id enqueue() returned: "007" or "1_000" would find another row.
        if not isinstance(result_id, str) or not result_id.isascii() or not result_id.isdigit():
            raise TaskResultDoesNotExist(result_id)
        pk = int(result_id)
        if str(pk) != result_id or pk > MAX_ID:
            raise TaskResultDoesNotExist(result_id)
        try:
            job = Job.objects.using(self._database(for_write=False)).get(pk=pk)
        except Job.DoesNotExist:
            raise TaskResultDoesNotExist(result_id) from None
        if not isinstance(job.meta, dict) or job.meta.get(META_KEY) != self.alias:
            raise TaskResultDoesNotExist(f"{result_id}: not a task of backend {self.alias!r}.")
        try:
            return self.result_for(job)
        except (ImportError, JobNotAllowed) as exc:
            # A row naming no declared Task (forged, or its code since removed).
            raise TaskResultDoesNotExist(f"{result_id}: {exc}") from None

    def result_for(self, job: Job, errors: list[JobError] | None = None) -> TaskResult:
        """The TaskResult a Job row stands for (``errors``: its JobErrors, if already read)."""
        task = find(job.name)
        if not isinstance(task, Task):
            raise TaskResultDoesNotExist(f"Job {job.pk} ({job.name}) is not a django.tasks Task.")
        return self.result_of_task(task, job, errors)

    def result_of_task(
        self, task: Task, job: Job, errors: list[JobError] | None = None
    ) -> TaskResult:
        """The TaskResult of ``job``, which runs ``task``: the task as it was enqueued."""
        run_after = job.meta.get(RUN_AFTER_KEY) if isinstance(job.meta, dict) else None
        task = task.using(
            priority=job.priority,
            queue_name=job.queue,
            backend=self.alias,
            run_after=datetime.fromisoformat(run_after) if run_after else None,
        )
        return self._result(task, job, read_errors(job) if errors is None else errors)

    def _result(self, task: Task, job: Job, errors: list[JobError]) -> TaskResult:
        workers = [error.worker for error in errors]
        if job.attempts > len(errors) and job.worker:
            workers.append(job.worker)
        result: TaskResult = TaskResult(
            task=task,
            id=str(job.pk),
            status=STATUS[job.status],
            enqueued_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_attempted_at=job.started_at,
            args=job.args,
            kwargs=job.kwargs,
            backend=self.alias,
            errors=[
                TaskError(exception_class_path=_class_path(e.exception), traceback=e.traceback)
                for e in errors
            ],
            worker_ids=workers,
        )
        if job.status == Status.SUCCEEDED:
            object.__setattr__(result, "_return_value", job.result)
        return result

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        messages: list[CheckMessage] = list(super().check(**kwargs))
        if not apps.is_installed("async_queue"):
            messages.append(
                Error(
                    f"TASKS[{self.alias!r}] uses {BACKEND}, which stores tasks as async_queue "
                    "jobs, but 'async_queue' is not in INSTALLED_APPS.",
                    hint="Add 'async_queue' to INSTALLED_APPS and run migrate.",
                    id="async_queue.E050",
                )
            )
        return messages + self._option_errors()

    def _option_errors(self) -> list[CheckMessage]:
        where = f"TASKS[{self.alias!r}]['OPTIONS']"
        options = self.options
        if not isinstance(options, dict):
            return [
                Error(
                    f"{where} must be a dict, not {type(options).__name__}.",
                    hint=f"Known keys: {', '.join(OPTIONS)}.",
                    id="async_queue.E051",
                )
            ]
        messages: list[CheckMessage] = [
            Error(
                f"{where} has an unknown key {key!r}.",
                hint=f"Known keys: {', '.join(OPTIONS)}.",
                id="async_queue.E051",
            )
            for key in options
            if key not in OPTIONS
        ]
        attempts = options.get("MAX_ATTEMPTS", 1)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts < 2**31:
            messages.append(
                Error(
                    f"{where}['MAX_ATTEMPTS'] must be a whole number of at least 1; "
                    f"got {attempts!r}.",
                    hint="1 (the default) fails a task on its first exception, as Django's own "
                    "backends do; a task can allow more with @async_queue.job(max_attempts=N).",
                    id="async_queue.E052",
                )
            )
        if not isinstance(options.get("ON_COMMIT", False), bool):
            messages.append(
                Error(
                    f"{where}['ON_COMMIT'] must be True or False; got {options['ON_COMMIT']!r}.",
                    hint="False (the default) writes the row in the caller's transaction; True "
                    "writes it when that transaction commits.",
                    id="async_queue.E053",
                )
            )
        database = options.get("DATABASE")
        if database is not None and database not in settings.DATABASES:
            messages.append(
                Error(
                    f"{where}['DATABASE'] is {database!r}, which is not a key of DATABASES.",
                    hint="Name a database alias, or leave it out to use the router's choice.",
                    id="async_queue.E054",
                )
            )
        return messages


def read_errors(job: Job, *, with_finish: bool = False) -> list[JobError]:
    """``job``'s JobErrors, read only if it can have any.

    Each failed attempt leaves one, and only a claimed attempt can fail: a job has
    at most ``attempts`` of them, one fewer while its latest attempt runs or once
    it succeeded. So a job just enqueued, or running or done at its first attempt,
    costs no query. ``with_finish``: the job's ``finished_at`` comes along in the
    same statement (the worker's UPDATE set it without reading it back).
    """
    from ...models import JobError

    possible = job.attempts - (1 if job.status in (Status.RUNNING, Status.SUCCEEDED) else 0)
    if possible <= 0 or job.pk is None:
        return []
    rows = JobError.objects.using(job._state.db).filter(job_id=job.pk)
    if not with_finish:
        return list(rows)
    annotated = list(rows.annotate(job_finished_at=F("job__finished_at")))
    if annotated:
        job.finished_at = annotated[0].job_finished_at
    errors: list[JobError] = list(annotated)
    return errors


def _class_path(exception: str) -> str:
    return exception if "." in exception else f"builtins.{exception}"


def _backend_and_task(job: Job) -> Any:
    backend = backend_of(job)
    if backend is None:
        return None
    try:
        if isinstance(find(job.name), Task):
            return backend
    except (ImportError, JobNotAllowed):
        pass
    return None  # a row naming no Task (forged): the worker fails it, nothing to report


def _started(sender: Any, job: Job, payload: dict[str, Any], **kwargs: Any) -> None:
    if (backend := _backend_and_task(job)) is not None:
        task_started.send(type(backend), task_result=backend.result_for(job))


def _finished(sender: Any, job: Job, payload: dict[str, Any], **kwargs: Any) -> None:
    """``task_finished`` for a final state: SUCCESSFUL, FAILED, or cancelled (FAILED).

    The worker keeps the row's status, result and attempts in ``job``; only the
    finish time is the database's, read with the errors where there are any.
    """
    if (backend := _backend_and_task(job)) is None:
        return
    errors = read_errors(job, with_finish=job.finished_at is None)
    if job.finished_at is None:
        job.refresh_from_db(fields=["finished_at"])
    task_finished.send(type(backend), task_result=backend.result_for(job, errors))


job_started.connect(_started, dispatch_uid="async_queue.contrib.tasks.started")
for _signal in (job_succeeded, job_failed, job_cancelled):
    _signal.connect(_finished, dispatch_uid=f"async_queue.contrib.tasks.finished.{id(_signal)}")
