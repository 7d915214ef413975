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

import abc
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.core.signals import request_finished
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.functions import Now

from .conf import queue_settings
from .db import second_connection
from .exceptions import InvalidJobState, JobCancelled
from .models import Job, Status
from .signals import send_event

logger = logging.getLogger("async_queue.progress")
MESSAGE_MAX_CHARS = 255


@dataclass(frozen=True)
class Progress:
    """A job's progress as last reported."""

    current: int | None = None
    total: int | None = None
    message: str = ""
    updated_at: datetime | None = None
    cancel_requested: bool = False

    @property
    def percent(self) -> float | None:
        if self.current is None or not self.total:
            return None
        return max(0.0, min(100.0, 100.0 * self.current / self.total))

    def as_dict(self) -> dict[str, Any]:
        return {"current": self.current, "total": self.total, "message": self.message}


# -- the stores -----------------------------------------------------------------------


class ProgressStore(abc.ABC):
    """Where a database's live progress lives; ``for_database()`` picks the implementation."""

    @staticmethod
    def for_database(using: str) -> ProgressStore:
        connection = connections[using]
        if connection.vendor == "postgresql":
            return RowStore(using)
        if connection.is_in_memory_db():
            return LocalStore.instance
        return SideStore.for_path(_side_path(connection))

    @abc.abstractmethod
    def write(self, job: Job, current: int, total: int | None, message: str) -> bool:
        """Record the running job's progress; returns whether cancellation was requested."""

    @abc.abstractmethod
    def cancel_requested(self, job: Job) -> bool:
        """Whether cancellation of the running job was requested."""

    @abc.abstractmethod
    def request_cancel(self, job: Job) -> bool:
        """Flag a running job; False if it is not running."""

    @abc.abstractmethod
    def read(self, jobs: list[Job]) -> dict[int, Progress]:
        """Live progress of these running jobs, for those that have any."""

    def clear(self, job: Job) -> None:  # noqa: B027 (optional hook)
        """Forget a job's live progress once its attempt ended."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release this store's connection."""


class RowStore(ProgressStore):
    """PostgreSQL: the job row itself, written through a second connection."""

    def __init__(self, using: str) -> None:
        self.using = using
        self._connection: BaseDatabaseWrapper | None = None
        table = connections[using].ops.quote_name(Job._meta.db_table)
        self._write_sql = (
            f"UPDATE {table} SET progress_current = %s, progress_total = %s, "
            "progress_message = %s, progress_updated_at = STATEMENT_TIMESTAMP() "
            f"WHERE id = %s AND status = '{Status.RUNNING}' "
            "RETURNING cancel_requested_at IS NOT NULL"
        )

    @property
    def connection(self) -> BaseDatabaseWrapper:
        # Not the worker's own connection: that one is inside the job's transaction. Not
        # from Django's pool either, which the worker's connection may use up.
        if self._connection is None:
            self._connection = second_connection(self.using)
        return self._connection

    def write(self, job: Job, current: int, total: int | None, message: str) -> bool:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(self._write_sql, [current, total, message, job.pk])
                row = cursor.fetchone()
        except Exception:
            # A lost progress connection must not fail the job: reconnect next time.
            logger.warning("Could not write progress of job %s.", job.pk, exc_info=True)
            self.close()
            return False
        return bool(row and row[0])

    def cancel_requested(self, job: Job) -> bool:
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT cancel_requested_at IS NOT NULL FROM {Job._meta.db_table} WHERE id = %s",
                [job.pk],
            )
            row = cursor.fetchone()
        return bool(row and row[0])

    def request_cancel(self, job: Job) -> bool:
        return bool(
            Job.objects.using(self.using)
            .filter(pk=job.pk, status=Status.RUNNING)
            .update(cancel_requested_at=Now())
        )

    def read(self, jobs: list[Job]) -> dict[int, Progress]:
        return {}  # the rows the caller loaded already carry the live values

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None


class SideStore(ProgressStore):
    """SQLite: a side database next to the main file, so that writes never wait on a job."""

    _stores: dict[Path, SideStore] = {}
    _stores_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    @classmethod
    def for_path(cls, path: Path) -> SideStore:
        with cls._stores_lock:
            if path not in cls._stores:
                cls._stores[path] = cls(path)
            return cls._stores[path]

    @property
    def db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS job_progress (job_id INTEGER PRIMARY KEY, "
                "claim TEXT NOT NULL, current INTEGER, total INTEGER, message TEXT, "
                "updated_at REAL, cancel INTEGER NOT NULL DEFAULT 0)"
            )
            self._local.db = db
        return db

    def write(self, job: Job, current: int, total: int | None, message: str) -> bool:
        # A row left by another claim (a killed worker) never lends this one its flag.
        try:
            (cancel,) = self.db.execute(
                "INSERT INTO job_progress (job_id, claim, current, total, message, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET "
                "cancel = CASE WHEN claim = excluded.claim THEN cancel ELSE 0 END, "
                "claim = excluded.claim, current = excluded.current, total = excluded.total, "
                "message = excluded.message, updated_at = excluded.updated_at RETURNING cancel",
                (job.pk, _claim(job), current, total, message, time.time()),
            ).fetchone()
        except sqlite3.Error:
            logger.warning("Could not write progress of job %s.", job.pk, exc_info=True)
            return False
        return bool(cancel)

    def cancel_requested(self, job: Job) -> bool:
        row = self.db.execute(
            "SELECT cancel FROM job_progress WHERE job_id = ? AND claim = ?", (job.pk, _claim(job))
        ).fetchone()
        return bool(row and row[0])

    def request_cancel(self, job: Job) -> bool:
        running = Job.objects.filter(pk=job.pk, status=Status.RUNNING)
        claim = running.values_list("worker", "attempts").first()
        if claim is None:
            return False
        self.db.execute(
            "INSERT INTO job_progress (job_id, claim, cancel) VALUES (?, ?, 1) "
            "ON CONFLICT (job_id) DO UPDATE SET cancel = 1, claim = excluded.claim",
            (job.pk, "{}#{}".format(*claim)),
        )
        return True

    def read(self, jobs: list[Job]) -> dict[int, Progress]:
        claims = {job.pk: _claim(job) for job in jobs}
        if not claims:
            return {}
        marks = ", ".join("?" * len(claims))
        rows = self.db.execute(
            "SELECT job_id, claim, current, total, message, updated_at, cancel FROM job_progress "
            f"WHERE job_id IN ({marks})",
            list(claims),
        ).fetchall()
        return {
            job_id: Progress(
                current,
                total,
                message or "",
                None if updated is None else datetime.fromtimestamp(updated, UTC),
                bool(cancel),
            )
            for job_id, claim, current, total, message, updated, cancel in rows
            if claims[job_id] == claim
        }

    def clear(self, job: Job) -> None:
        try:
            self.db.execute("DELETE FROM job_progress WHERE job_id = ?", (job.pk,))
        except sqlite3.Error:
            logger.warning("Could not clear progress of job %s.", job.pk, exc_info=True)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class LocalStore(ProgressStore):
    """An in-memory SQLite database: progress visible within this process only."""

    instance: LocalStore

    def __init__(self) -> None:
        self._progress: dict[int, Progress] = {}
        self._lock = threading.Lock()

    def write(self, job: Job, current: int, total: int | None, message: str) -> bool:
        with self._lock:
            previous = self._progress.get(job.pk, Progress())
            self._progress[job.pk] = Progress(
                current, total, message, datetime.now(UTC), previous.cancel_requested
            )
            return previous.cancel_requested

    def cancel_requested(self, job: Job) -> bool:
        return self._progress.get(job.pk, Progress()).cancel_requested

    def request_cancel(self, job: Job) -> bool:
        if not Job.objects.filter(pk=job.pk, status=Status.RUNNING).exists():
            return False
        with self._lock:
            previous = self._progress.get(job.pk, Progress())
            self._progress[job.pk] = Progress(
                previous.current, previous.total, previous.message, previous.updated_at, True
            )
        return True

    def read(self, jobs: list[Job]) -> dict[int, Progress]:
        return {job.pk: self._progress[job.pk] for job in jobs if job.pk in self._progress}

    def clear(self, job: Job) -> None:
        with self._lock:
            self._progress.pop(job.pk, None)


LocalStore.instance = LocalStore()


def close_side_connections(**kwargs: Any) -> None:
    """Close this thread's side-database connections (connected to ``request_finished``).

    A threaded server runs each request in a new thread, whose connections would
    otherwise stay open until it is collected.
    """
    for store in list(SideStore._stores.values()):
        store.close()


request_finished.connect(close_side_connections, dispatch_uid="async_queue.progress")


def _claim(job: Job) -> str:
    return f"{job.worker}#{job.attempts}"


def _side_path(connection: BaseDatabaseWrapper) -> Path:
    name = Path(str(connection.settings_dict["NAME"]))
    return name.with_name(name.name + ".progress")


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
        send_event("progress", self.job, progress=self.snapshot().as_dict(), message=message)
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
    """Cancel ``job``: "cancelled" if it was queued, "requested" if it is running.

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
            send_event("cancelled", job)
            return "cancelled"
    if job.status != Status.RUNNING:
        raise InvalidJobState(f"Job {job.pk} is {job.status}; it cannot be cancelled.")
    if not ProgressStore.for_database(using).request_cancel(job):
        job.refresh_from_db(fields=["status"])
        raise InvalidJobState(f"Job {job.pk} is {job.status}; it cannot be cancelled.")
    return "requested"


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
            close_side_connections()

    return await sync_to_async(read, thread_sensitive=False)()


def snapshot(jobs: Iterable[Job]) -> dict[int, Progress]:
    """Progress of each job, live for running ones; at most one query, keyed by pk."""
    jobs = list(jobs)
    result = {
        job.pk: Progress(
            job.progress_current,
            job.progress_total,
            job.progress_message,
            job.progress_updated_at,
            job.cancel_requested_at is not None,
        )
        for job in jobs
    }
    running = [job for job in jobs if job.status == Status.RUNNING]
    if running:
        using = running[0]._state.db or "default"
        try:
            result.update(ProgressStore.for_database(using).read(running))
        except sqlite3.Error:
            logger.warning("Could not read live progress.", exc_info=True)
    return result
