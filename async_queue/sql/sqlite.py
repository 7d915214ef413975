"""SQLite: one writer at a time, so the queue leans on the database's write lock.

- The claim's UPDATE is serialized by the single writer; its ``status = 'queued'``
  re-check makes a lost race claim nothing instead of claiming twice.
- A job's transaction begins with ``BEGIN IMMEDIATE``: it holds the write lock
  from its first statement, so it never overlaps another job or a ``hold()``
  block, and object locks need no lock of their own.
- A worker holds an flock() on a file next to the database (``<name>.workers/``)
  while its process lives: exact, so no heartbeat needs to be late.
- A job's transaction holds the write lock, so live progress cannot go to the
  job row: it goes to a side database next to the main file
  (``<name>.progress``, WAL mode, one row per running job), which the dashboard
  reads next to the job row. An in-memory database keeps it in this process.
- Idle workers poll.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from django.core.signals import request_finished
from django.db import OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Lookup, Q
from django.db.models.lookups import Exact, In

from ..conf import queue_settings
from ..models import Job, JobLock, Progress, Status
from .base import Dialect, LivenessLock, ProgressStore, second_connection

if TYPE_CHECKING:
    from django.db.backends.sqlite3.base import DatabaseWrapper

    class SQLiteWrapper(DatabaseWrapper):
        # Set from OPTIONS by get_connection_params() (Django 5.1+); not in django-stubs.
        transaction_mode: str | None


logger = logging.getLogger("async_queue.progress")

_HINTABLE: dict[str, type[Lookup]] = {"exact": Exact, "in": In}


@functools.cache
def _hinted_lookup(name: str, function: str) -> type[Lookup]:
    """The lookup ``name`` whose SQL is wrapped in SQLite's ``likely()`` or ``unlikely()``."""
    lookup = _HINTABLE[name]

    def as_sql(self: Lookup, compiler: Any, connection: Any) -> tuple[str, Any]:
        sql, params = lookup.as_sql(self, compiler, connection)
        return f"{function}({sql})", params

    return type(f"{function.title()}{lookup.__name__}", (lookup,), {"as_sql": as_sql})


def is_database_busy(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is SQLite giving up on a lock after its busy timeout.

    SQLite has one writer at a time; a job's transaction holds the write lock for
    the job's whole run, so a web write that waits longer than the connection's
    busy ``timeout`` fails with "database is locked". It is a temporary state, not
    a bug: the request can be tried again once the job has ended.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OperationalError | sqlite3.OperationalError):
            message = str(current).lower()
            if "database is locked" in message or "database table is locked" in message:
                return True
        current = current.__cause__ or current.__context__
    return False


# -- liveness -----------------------------------------------------------------------------


def _file_name(worker: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in worker) + ".lock"


class FileLock(LivenessLock):
    """The flock() a worker process holds on a file next to the database while it lives."""

    per_process = True

    def __init__(self, directory: Path, worker: str) -> None:
        self.path = directory / _file_name(worker)
        self.worker = worker
        self._file: Any = None

    def acquire(self) -> None:
        if self._file is not None:
            return
        self.path.parent.mkdir(exist_ok=True)
        handle = open(self.path, "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(f"Worker id {self.worker!r} is already in use.") from None
        self._file = handle

    def release(self, connection: BaseDatabaseWrapper | None = None) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._file.name)
            self._file.close()
            self._file = None


# -- live progress ------------------------------------------------------------------------


def _claim(job: Job) -> str:
    return f"{job.worker}#{job.attempts}"


class SideStore(ProgressStore):
    """A side database next to the main file, so that writes never wait on a job."""

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
        try:
            rows = self.db.execute(
                "SELECT job_id, claim, current, total, message, updated_at, cancel "
                f"FROM job_progress WHERE job_id IN ({marks})",
                list(claims),
            ).fetchall()
        except sqlite3.Error:
            logger.warning("Could not read live progress.", exc_info=True)
            return {}
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
    """An in-memory database: progress visible within this process only."""

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


# -- the dialect --------------------------------------------------------------------------


class SQLite(Dialect):
    vendor = "sqlite"
    now = "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW')"
    exact_liveness = True
    single_writer = True
    epoch = "((JULIANDAY(STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW')) - 2440587.5) * 86400.0)"
    floor = "{}"  # CAST(... AS BIGINT) truncates, which for positive numbers rounds down

    @property
    def connection(self) -> SQLiteWrapper:
        return cast("SQLiteWrapper", connections[self.using])

    @property
    def _name(self) -> Path:
        return Path(str(self.connection.settings_dict["NAME"]))

    @contextlib.contextmanager
    def job_transaction(self) -> Iterator[None]:
        """Begins with ``BEGIN IMMEDIATE``: the write lock is taken (waiting up to the
        busy timeout) before the job body reads anything, so the body can never fail
        midway with "database is locked" because another connection wrote after its
        first read. Other connections of the project keep Django's default."""
        connection = self.connection
        if connection.in_atomic_block:
            with transaction.atomic(using=self.using):
                yield
            return
        connection.ensure_connection()
        previous = connection.transaction_mode
        connection.transaction_mode = "IMMEDIATE"
        try:
            with transaction.atomic(using=self.using):
                connection.transaction_mode = previous
                yield
        finally:
            connection.transaction_mode = previous

    def hinted(self, few: bool | None, **lookup: Any) -> Q | Lookup:
        """The filter ``field[__lookup]=value`` and what the caller knows of how many match.

        SQLite's planner knows only the average number of rows per value of an indexed
        column (``sqlite_stat1``): when most jobs succeeded, or have no user, it expects
        ``status = 'failed'`` or ``user_id = 7`` to match a large part of the table and
        walks the whole table by id instead of that column's index, which takes
        seconds when few or no rows match; and the other way round, it sorts a million
        rows of a common name rather than walk the table by id until a page is full.
        ``few=True`` wraps the condition in ``unlikely()``, ``few=False`` in ``likely()``
        (they change the plan, never the result); ``None`` adds no hint. PostgreSQL
        keeps statistics of the actual values and needs no hint.
        """
        if few is None:
            return Q(**lookup)
        ((path, value),) = lookup.items()
        field, _, name = path.partition("__")
        hinted_class = _hinted_lookup(name or "exact", "unlikely" if few else "likely")
        return hinted_class(F(field), value)

    # -- object locks ---------------------------------------------------------------------

    def hold(
        self,
        keys: list[str],
        plan: list[tuple[int, bool]],
        *,
        wait: bool | float,
        refuse_if_running: Callable[[], None],
    ) -> bool:
        """The database's single write lock (True), or ``Conflict`` if a running job has the keys.

        Another writer (often a running job) may hold the lock. Then a running job that
        declared ``keys`` is a conflict at once; any other writer is waited for, up to
        the busy timeout, like by every writer. The check runs without a read in this
        transaction: after one, SQLite refuses the wait with "database is locked".

        A wait that outlasts the busy timeout raises that ``OperationalError`` as it is,
        not ``Conflict``: nothing holds these objects, the whole database is busy (for
        ``DatabaseBusyMiddleware``, a 503 "try again").
        """
        if self.take_write_lock(wait=False):
            return True
        if self.declared_by_running_job(keys):
            refuse_if_running()
        try:
            self.take_write_lock()
        except OperationalError:
            refuse_if_running()
            raise
        return True

    def take_write_lock(self, *, wait: bool = True) -> bool:
        """Take the database's write lock now; False if another writer holds it.

        With ``wait`` it waits up to the busy timeout (then raises ``OperationalError``).
        Without, it fails at once and leaves the transaction unread: SQLite only waits
        for the write lock in a transaction that has not read yet (a reader asking to
        write while another connection writes gets "database is locked" at once).
        """
        with self.connection.cursor() as cursor:
            statement = f"DELETE FROM {JobLock._meta.db_table} WHERE 0"
            if wait:
                cursor.execute(statement)
                return True
            cursor.execute("PRAGMA busy_timeout")
            (timeout,) = cursor.fetchone()
            cursor.execute("PRAGMA busy_timeout = 0")
            try:
                cursor.execute(statement)
            except OperationalError:
                return False
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        return True

    def declared_by_running_job(self, keys: Sequence[str]) -> bool:
        """Whether a running job declared any of ``keys``.

        Asked on a connection of its own, so that the caller's transaction stays unread
        and may still wait for the write lock (see ``take_write_lock``).
        """
        side = second_connection(self.using)
        table, locks = Job._meta.db_table, JobLock._meta.db_table
        try:
            with side.cursor() as cursor:
                for start in range(0, len(keys), 500):
                    chunk = list(keys[start : start + 500])
                    placeholders = ", ".join(["%s"] * len(chunk))
                    cursor.execute(
                        f"SELECT 1 FROM {locks} JOIN {table} ON {table}.id = {locks}.job_id "
                        f"WHERE {table}.status = %s AND {locks}.key IN ({placeholders}) LIMIT 1",
                        [Status.RUNNING, *chunk],
                    )
                    if cursor.fetchone() is not None:
                        return True
        finally:
            side.close()
        return False

    # -- liveness -------------------------------------------------------------------------

    @property
    def liveness_dir(self) -> Path:
        return self._name.parent / f"{self._name.name}.workers"

    def liveness_lock(self, worker: str) -> LivenessLock:
        return FileLock(self.liveness_dir, worker)

    def unlocked(self, workers: set[str]) -> set[str]:
        free = set()
        for worker in workers:
            path = self.liveness_dir / _file_name(worker)
            try:
                with open(path, "a") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except FileNotFoundError:
                free.add(worker)
            except BlockingIOError:
                continue
            else:
                free.add(worker)
                with contextlib.suppress(OSError):
                    path.unlink()
        return free

    def heartbeat_options(self) -> dict[str, Any]:
        # Never wait long behind a job's write lock: a late beat costs nothing here.
        return {"timeout": min(queue_settings.HEARTBEAT_INTERVAL, 1.0)}

    # -- progress -------------------------------------------------------------------------

    def in_memory(self) -> bool:
        return self.connection.is_in_memory_db()

    def progress_store(self) -> ProgressStore:
        if self.in_memory():
            return LocalStore.instance
        return SideStore.for_path(self._name.with_name(self._name.name + ".progress"))
