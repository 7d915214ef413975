"""Job rows: the queue, the progress record and the dashboard record in one.

A job moves ``queued -> running -> succeeded | failed | cancelled``; a failed
attempt that has attempts left goes back to ``queued`` with a later
``run_after`` (``states`` names them all). Every transition is a conditional
UPDATE that names the state it expects, here as a method of ``Job``; the two of
the hot path, the claim and the success, are single statements of the dialect
(``sql.Dialect.claim``/``complete``) fenced the same way. So two processes can
never both perform the same transition. Timestamps come from the database clock
(``Now()``), never from the clock of whichever machine a worker runs on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils.module_loading import import_string

from ..exceptions import InvalidJobState
from ..fields import JobJSONField
from ..states import FINISHED, Outcome, Progress, Status

# How a job runs in this process (``Job.execute()``): the worker's, imported when
# called, so that the model never depends on the worker that depends on it.
EXECUTOR = "async_queue.worker.execute"


class JobQuerySet(models.QuerySet["Job"]):
    def queued(self) -> JobQuerySet:
        return self.filter(status=Status.QUEUED)

    def due(self) -> JobQuerySet:
        """Queued jobs whose ``run_after`` has passed on the database clock."""
        return self.filter(status=Status.QUEUED, run_after__lte=Now())

    def running(self) -> JobQuerySet:
        return self.filter(status=Status.RUNNING)

    def succeeded(self) -> JobQuerySet:
        return self.filter(status=Status.SUCCEEDED)

    def failed(self) -> JobQuerySet:
        return self.filter(status=Status.FAILED)

    def cancelled(self) -> JobQuerySet:
        return self.filter(status=Status.CANCELLED)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=FINISHED)

    def in_claim_order(self) -> JobQuerySet:
        """Highest priority first, then the longest due, then the oldest."""
        return self.order_by("-priority", "run_after", "id")

    def count_by_status(self, cap: int, statuses: Iterable[str] = tuple(Status)) -> dict[str, int]:
        """How many of these jobs are in each status, each counted up to ``cap + 1``.

        One statement of per-status ``COUNT`` subqueries, each stopping after
        ``cap + 1`` rows (found through the status index), so the cost does not
        grow with the table: a count above ``cap`` means "more than ``cap``".
        Only ``statuses`` are counted (all by default).
        """
        counted = [Status(status) for status in statuses]
        if self.query.is_empty():
            return dict.fromkeys((status.value for status in counted), 0)
        parts, params = [], []
        jobs = self.order_by().values("pk")
        for index, status in enumerate(counted):
            limited = jobs.filter(status=status)[: cap + 1]
            sql, part_params = limited.query.get_compiler(using=self.db).as_sql()
            parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS counted_{index})")
            params.extend(part_params)
        with connections[self.db].cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(parts)}", params)
            row = cursor.fetchone()
        return {status.value: count for status, count in zip(counted, row, strict=True)}

    def names(self, limit: int) -> list[str]:
        """The distinct names of the stored jobs in order, at most ``limit`` of them.

        Every job in the table counts, whatever this queryset's filters: the names
        are found by skipping through the ``(name, status)`` index, one probe per
        distinct name, so the cost grows with the number of names (a few dozen to
        a few hundred in practice), not with the number of jobs.
        """
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        sql = (
            f"WITH RECURSIVE found(name, n) AS ("
            f"SELECT MIN(name), 1 FROM {table} "
            f"UNION ALL SELECT (SELECT MIN(name) FROM {table} WHERE name > found.name), n + 1 "
            f"FROM found WHERE found.name IS NOT NULL AND n < %s"
            f") SELECT name FROM found WHERE name IS NOT NULL"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [limit])
            return [name for (name,) in cursor.fetchall()]

    def cancel(self) -> int:
        """Cancel the queued jobs among these; returns how many were cancelled."""
        return self.queued().update(status=Status.CANCELLED, finished_at=Now())


class Job(models.Model):
    name = models.CharField(max_length=255, help_text="Dotted path of the function to run.")
    args = JobJSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    kwargs = JobJSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    meta = JobJSONField(
        default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="Free-form caller data."
    )
    queue = models.CharField(max_length=100, default="default")
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)

    run_after = models.DateTimeField(db_default=Now(), help_text="Not run before this time.")
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    attempts = models.PositiveIntegerField(default=0, help_text="Attempts claimed so far.")
    max_attempts = models.PositiveIntegerField(default=5)
    worker = models.CharField(
        max_length=200, blank=True, default="", help_text="The worker of the latest claim."
    )
    result = JobJSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    last_error = models.TextField(blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="async_queue_jobs",
    )

    timeout = models.FloatField(
        null=True, blank=True, help_text="Seconds an attempt may run before it is interrupted."
    )
    group = models.ForeignKey(
        "JobGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    waits_for_group = models.BooleanField(
        default=False, help_text="Runs only once every other job of its group has finished."
    )
    policy = JobJSONField(
        null=True,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="schedule()'s failure-policy overrides (retry_on, discard_on, backoff); "
        "null: the job's declaration and the settings decide.",
    )
    snoozes = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Times it asked to run later (Snooze), no attempt used."
    )
    concurrency_key = models.CharField(
        max_length=255, null=True, blank=True, help_text="Jobs with this key share a limit."
    )
    concurrency = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many jobs with the key run at once."
    )
    rate_key = models.CharField(
        max_length=255, null=True, blank=True, help_text="Jobs with this key share a rate."
    )
    rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many starts per rate period."
    )
    rate_period = models.FloatField(null=True, blank=True, help_text="Seconds.")
    has_locks = models.BooleanField(default=False, help_text="Declared object locks.")
    unique_key = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        help_text="At most one queued or running job has a given key.",
    )
    tracker = models.CharField(
        max_length=100,
        blank=True,
        default="",
        db_default="",  # rows written by raw SQL (bulk loaders, other languages) too
        help_text="The configured tracker mirroring this job: a key of ASYNC_QUEUE['TRACKERS'], "
        "'' for the TRACKER setting, '-' for none.",
    )

    progress_current = models.BigIntegerField(null=True, blank=True)
    progress_total = models.BigIntegerField(null=True, blank=True)
    progress_message = models.CharField(max_length=255, blank=True, default="")
    progress_updated_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when a running job is asked to stop."
    )

    objects = JobQuerySet.as_manager()

    # Set by schedule() until the rows are written.
    lock_keys: list[str]
    run_after_delay: timedelta | None
    deduplicated: bool  # a unique job that took an existing job's place

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                F("priority").desc(),
                "run_after",
                "id",
                condition=Q(status=Status.QUEUED),
                name="async_queue_job_claim_idx",
            ),
            models.Index(fields=["status", "finished_at"], name="async_queue_job_finished_idx"),
            models.Index(fields=["name", "status"], name="async_queue_job_name_idx"),
            models.Index(fields=["queue", "status"], name="async_queue_job_queue_idx"),
            models.Index(
                fields=["concurrency_key"],
                condition=Q(status=Status.RUNNING, concurrency_key__isnull=False),
                name="async_queue_job_limited_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="async_queue_job_status_valid"
            ),
            models.UniqueConstraint(
                fields=["unique_key"],
                condition=Q(status__in=[Status.QUEUED, Status.RUNNING]),
                name="async_queue_job_unique_active",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def is_queued(self) -> bool:
        return self.status == Status.QUEUED

    @property
    def is_running(self) -> bool:
        return self.status == Status.RUNNING

    @property
    def is_succeeded(self) -> bool:
        return self.status == Status.SUCCEEDED

    @property
    def is_failed(self) -> bool:
        return self.status == Status.FAILED

    @property
    def progress(self) -> Progress:
        """The progress the row holds (``snapshot()`` adds the live value of a running job)."""
        return Progress(
            self.progress_current,
            self.progress_total,
            self.progress_message,
            self.progress_updated_at,
            self.cancel_requested_at is not None,
        )

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    def _transition(self, expected: tuple[str, ...], **values: Any) -> None:
        """Apply ``values`` only if the row is still in one of the ``expected`` statuses."""
        updated = Job.objects.filter(pk=self.pk, status__in=expected).update(**values)
        if not updated:
            self.refresh_from_db(fields=["status"])
            raise InvalidJobState(
                f"Job {self.pk} is {self.status}; expected {' or '.join(expected)}."
            )
        self.refresh_from_db(fields=[*values])

    # -- transitions of a claimed attempt (a worker's) -------------------------------------

    def claimed(self, worker: str) -> JobQuerySet:
        """This row, only while it is still running under this claim (attempt and worker)."""
        return Job.objects.using(self._state.db).filter(
            pk=self.pk, status=Status.RUNNING, attempts=self.attempts, worker=worker
        )

    def defer(self, worker: str, seconds: float) -> bool:
        """Its object locks are busy: queued again in ``seconds``, the attempt not used."""
        if not self.claimed(worker).update(
            status=Status.QUEUED, attempts=F("attempts") - 1, run_after=_later(seconds)
        ):
            return False
        self.status, self.attempts = Status.QUEUED, self.attempts - 1
        return True

    def snooze(self, worker: str, seconds: float, progress: dict[str, Any]) -> bool:
        """It raised ``Snooze``: queued again in ``seconds``, the attempt not used."""
        if not self.claimed(worker).update(
            status=Status.QUEUED,
            attempts=F("attempts") - 1,
            snoozes=F("snoozes") + 1,
            run_after=_later(seconds),
            **progress,
        ):
            return False
        self.status, self.attempts, self.snoozes = (
            Status.QUEUED,
            self.attempts - 1,
            self.snoozes + 1,
        )
        return True

    def mark_cancelled(self, worker: str, progress: dict[str, Any]) -> bool:
        """Cancellation was requested and the running job noticed (its writes rolled back)."""
        if not self.claimed(worker).update(status=Status.CANCELLED, finished_at=Now(), **progress):
            return False
        self.status = Status.CANCELLED
        return True

    def fail_attempt(
        self,
        worker: str,
        error: dict[str, str],
        *,
        retry_in: float | None,
        progress: dict[str, Any],
    ) -> bool:
        """Record a failed attempt (``error``: a ``JobError``'s exception, message, traceback
        and the row's ``last_error`` summary): queued again in ``retry_in`` seconds, or
        failed for good when it is None. False if the claim was lost meanwhile."""
        values: dict[str, Any]
        if retry_in is None:
            values = {"status": Status.FAILED, "finished_at": Now()}
        else:
            values = {"status": Status.QUEUED, "run_after": _later(retry_in)}
        summary = error["summary"]
        if not self.claimed(worker).update(last_error=summary, **values, **progress):
            return False
        self.errors.create(  # a JobError (``records``), on this row's database
            attempt=self.attempts,
            worker=worker,
            exception=error["exception"],
            message=error["message"],
            traceback=error["traceback"],
            decision=error.get("decision", ""),
        )
        self.status, self.last_error = values["status"], summary
        return True

    # -- transitions anyone may ask for -----------------------------------------------------

    def cancel(self) -> None:
        """Cancel a queued job (it will never run)."""
        self._transition((Status.QUEUED,), status=Status.CANCELLED, finished_at=Now())

    def retry(self) -> None:
        """Queue a failed job again, now; it gets one more attempt if it had none left."""
        self._transition(
            (Status.FAILED,),
            status=Status.QUEUED,
            run_after=Now(),
            finished_at=None,
            max_attempts=max(self.max_attempts, self.attempts + 1),
        )

    async def arefresh(self) -> Job:
        """Reload this job's row (async)."""
        await self.arefresh_from_db()
        return self

    async def wait(self, timeout: float | None = None, interval: float = 0.2) -> Job:
        """Wait (async) until the job has finished; ``TimeoutError`` after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        await self.arefresh()
        while not self.is_finished:
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"Job {self.pk} is still {self.status} after {timeout}s.")
            await asyncio.sleep(interval)
            await self.arefresh()
        return self

    def execute(self) -> Outcome:
        """Run this queued job now, in this process, exactly as a worker would."""
        outcome: Outcome = import_string(EXECUTOR)(self)
        self.refresh_from_db()
        return outcome


def _later(seconds: float) -> Any:
    """The database clock's now, ``seconds`` later."""
    if not seconds:
        return Now()
    return models.ExpressionWrapper(
        Now() + timedelta(seconds=seconds), output_field=models.DateTimeField()
    )
