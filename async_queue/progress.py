"""Progress from inside a job, visible while the job's transaction is still open.

``report_progress()`` writes outside the job's transaction, or nobody could see
it before the job commits:

- **PostgreSQL**: a second connection of the worker updates the job row's
  progress columns in autocommit. The job's own transaction never touches its
  row before the body ends, so the two never wait on each other.
- **SQLite**: the job's transaction holds the database's only write lock, so a
  second writer would wait for it. Progress goes to a small side database next
  to the main file (``<name>.progress``, WAL mode, one row per running job),
  which the dashboard reads next to the job row.

Writes are throttled to one per ``PROGRESS_INTERVAL`` seconds per job (the first
and the final value, ``current >= total``, are always written), so a loop calling
``report_progress`` 100,000 times costs little. The final values are copied into
the job row when the attempt ends, on both databases.

Cancellation is cooperative: ``cancel(job)`` cancels a queued job at once and
flags a running one; the job's next progress write (or ``check_cancelled()``)
sees the flag and raises ``JobCancelled``, which rolls the job's writes back.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models.functions import Now

from .conf import queue_settings
from .exceptions import InvalidJobState, JobCancelled
from .models import Job, Progress, Status
from .signals import send_event
from .sql import ProgressStore, dialect
from .states import Event

logger = logging.getLogger("async_queue.progress")
MESSAGE_MAX_CHARS = 255
# What cancel() did: cancelled a queued job, or asked a running one to stop.
CANCELLED, REQUESTED = "cancelled", "requested"


# -- inside a job -----------------------------------------------------------------------


@dataclass
class Reporter:
    """The running job's progress state, set by the worker around the job body."""

    job: Job
    store: ProgressStore
    interval: float = field(default_factory=lambda: float(queue_settings.PROGRESS_INTERVAL))
    current: int | None = None
    total: int | None = None
    message: str = ""
    last_write: float = -math.inf

    def report(self, current: int, total: int | None, message: str) -> None:
        self.current, self.total, self.message = current, total, message
        now = time.monotonic()
        final = total is not None and current >= total
        if not final and now - self.last_write < self.interval:
            return
        self.last_write = now
        cancelled = self.store.write(self.job, current, total, message)
        send_event(Event.PROGRESS, self.job, progress=self.snapshot().as_dict(), message=message)
        if cancelled:
            raise JobCancelled(f"Job {self.job.pk} was cancelled.")

    def snapshot(self) -> Progress:
        return Progress(self.current, self.total, self.message)

    def row_values(self) -> dict[str, Any]:
        """The job row's progress columns for the last reported values (empty if none)."""
        if self.current is None:
            return {}
        return {
            "progress_current": self.current,
            "progress_total": self.total,
            "progress_message": self.message,
            "progress_updated_at": Now(),
        }


_reporter: ContextVar[Reporter | None] = ContextVar("async_queue_reporter", default=None)


def current_job() -> Job | None:
    """The job this code runs in (inside a worker), or None."""
    reporter = _reporter.get()
    return None if reporter is None else reporter.job


def report_progress(current: int, total: int | None = None, message: str = "") -> None:
    """Report how far the running job is; raises ``JobCancelled`` if it was cancelled.

    Outside a job it does nothing (and says so at debug level).
    """
    reporter = _reporter.get()
    if reporter is None:
        logger.debug("report_progress(%r, %r) outside a job: ignored.", current, total)
        return
    if not isinstance(current, int) or isinstance(current, bool) or current < 0:
        raise ValueError(f"current must be a non-negative integer; got {current!r}.")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise ValueError(f"total must be a non-negative integer or None; got {total!r}.")
    reporter.report(current, total, str(message)[:MESSAGE_MAX_CHARS])


def check_cancelled() -> None:
    """Raise ``JobCancelled`` if the running job's cancellation was requested."""
    reporter = _reporter.get()
    if reporter is not None and reporter.store.cancel_requested(reporter.job):
        raise JobCancelled(f"Job {reporter.job.pk} was cancelled.")


# -- outside a job ----------------------------------------------------------------------


def cancel(job: Job) -> str:
    """Cancel ``job``: ``CANCELLED`` ("cancelled") if it was queued, ``REQUESTED``
    ("requested") if it is running.

    A running job stops at its next ``report_progress()`` or ``check_cancelled()``;
    one that calls neither runs to its end. Raises ``InvalidJobState`` otherwise.
    """
    using = job._state.db or "default"
    # Read first: on SQLite, writing the main database waits for a running job.
    job.refresh_from_db(fields=["status"])
    if job.status == Status.QUEUED:
        try:
            job.cancel()
        except InvalidJobState:
            if job.status != Status.RUNNING:
                raise
        else:
            send_event(Event.CANCELLED, job)
            return CANCELLED
    if job.status != Status.RUNNING:
        raise InvalidJobState(f"Job {job.pk} is {job.status}; it cannot be cancelled.")
    if not dialect(using).progress_store().request_cancel(job):
        job.refresh_from_db(fields=["status"])
        raise InvalidJobState(f"Job {job.pk} is {job.status}; it cannot be cancelled.")
    return REQUESTED


async def asnapshot(jobs: Iterable[Job]) -> dict[int, Progress]:
    """``snapshot()`` for async views.

    On PostgreSQL the rows carry their progress and nothing is read. On SQLite the
    side database is read in a worker thread with a connection closed right after,
    so no thread of the event loop keeps one open.
    """
    jobs = list(jobs)
    if not any(job.status == Status.RUNNING for job in jobs):
        return snapshot(jobs)

    def read() -> dict[int, Progress]:
        try:
            return snapshot(jobs)
        finally:
            _store(jobs).close()

    return await sync_to_async(read, thread_sensitive=False)()


def snapshot(jobs: Iterable[Job]) -> dict[int, Progress]:
    """Progress of each job, live for running ones; at most one query, keyed by pk."""
    jobs = list(jobs)
    result = {job.pk: job.progress for job in jobs}
    running = [job for job in jobs if job.status == Status.RUNNING]
    if running:
        result.update(_store(running).read(running))
    return result


def _store(jobs: list[Job]) -> ProgressStore:
    return dialect(jobs[0]._state.db or "default").progress_store()
