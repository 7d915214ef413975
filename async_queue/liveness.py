"""A worker's lease on life: its ``Worker`` row, kept fresh by a thread of its own.

``Lease.ensure()`` (before each claim) registers the worker once: it opens a
connection of its own outside Django's pool (``sql.second_connection``), finds out
whether a connection pooler sits between it and PostgreSQL (``Dialect.pooler``),
takes the dialect's liveness lock (``sql.postgresql`` and ``sql.sqlite`` explain
them; a worker behind a pooler holds none: pooled mode), writes the row and
starts a daemon thread. Every ``HEARTBEAT_INTERVAL`` seconds the thread refreshes
``heartbeat_at`` (database clock) with the worker's current job and counts, taking
the lock again first if its connection was lost. A beat that matches no row means
the worker was declared lost: the lease ends and the worker registers anew, under
a new name, before its next claim. ``release()`` marks a clean exit.

None of this runs on the worker's own connection, so the claim and the job's
transaction cost no extra query, and a job that blocks (or holds SQLite's write
lock) never delays the heartbeat of another worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence

from django.db import DatabaseError, IntegrityError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q, QuerySet
from django.db.models.functions import Now

from .conf import queue_settings
from .models import Worker, WorkerMode
from .sql import LivenessLock, dialect, second_connection, seconds_ago

logger = logging.getLogger("async_queue.worker")

# What the heartbeat writes besides the time: (current job id, jobs done, failures).
Snapshot = Callable[[], tuple[int | None, int, int]]


def _nothing() -> tuple[int | None, int, int]:
    return None, 0, 0


class Lease:
    """One worker name's row, lock and heartbeat thread (see the module docstring)."""

    def __init__(
        self,
        using: str,
        worker: str,
        *,
        queues: Sequence[str] = (),
        snapshot: Snapshot = _nothing,
    ) -> None:
        self.using = using
        self.worker = worker
        self.queues = list(queues)
        self.snapshot = snapshot
        self.alias = f"{using}__liveness"
        self.dialect = dialect(using)
        self.mode: str | None = None
        self.lost = False
        self._connection: BaseDatabaseWrapper | None = None
        self._locked_on: object | None = None
        self._liveness_lock: LivenessLock = self.dialect.liveness_lock(worker)
        self._thread: threading.Thread | None = None
        self._started = False
        self._stop = threading.Event()
        self._registered = False

    @property
    def pooled(self) -> bool:
        return self.mode == WorkerMode.POOLED

    # -- the worker's side ----------------------------------------------------------------

    def ensure(self) -> None:
        """Register and start beating, once; raises if the name is held by a live worker."""
        if self._started:
            return
        lock = self._liveness_lock
        if lock.per_process:
            # The process holds it (an flock), exact on its own: the row is for the
            # dashboard, and nothing waits on a connection first.
            lock.acquire()
            self.mode = WorkerMode.DIRECT
            self._started = True
            if self.dialect.in_memory():
                return  # no second connection would see this database: no row
            with contextlib.suppress(DatabaseError):
                # Best effort: the flock is what counts here, and another worker's job
                # may hold the write lock for long; the heartbeat thread registers then.
                self._connect()
                self._register()
        else:
            connection = self._connect()
            try:
                found = self.dialect.pooler(connection)
                self.mode = WorkerMode.POOLED if found else WorkerMode.DIRECT
                if self.mode == WorkerMode.DIRECT and not self._lock():
                    raise RuntimeError(f"Worker id {self.worker!r} is already in use.")
                self._log_mode(found)
                self._register()
            except BaseException:
                self._close()
                raise
            self._started = True
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat_forever, name=f"heartbeat {self.worker}", daemon=True
        )
        self._thread.start()

    def release(self) -> None:
        """Stop beating; mark a clean exit and free the lock (no job running)."""
        thread, self._thread = self._thread, None
        self._started = False
        if thread is not None:
            self._stop.set()
            thread.join(timeout=max(5.0, 2 * queue_settings.HEARTBEAT_INTERVAL))
            if thread.is_alive():
                logger.warning("The heartbeat of worker %s did not stop in time.", self.worker)
        with contextlib.suppress(KeyError, AttributeError):
            del connections[self.alias]
        if self._liveness_lock.per_process:
            self._liveness_lock.release()

    def _log_mode(self, found: str) -> None:
        if found:
            logger.info(
                "Worker %s: pooled mode, a connection pooler sits between it and PostgreSQL "
                "(%s). No session lock; a worker whose heartbeat is older than "
                "WORKER_TIMEOUT (%gs) is taken for dead. Idle workers poll instead of LISTEN.",
                self.worker,
                found,
                queue_settings.WORKER_TIMEOUT,
            )
        else:
            logger.info(
                "Worker %s: direct mode, a session lock and a heartbeat every %gs on a "
                "connection of its own.",
                self.worker,
                queue_settings.HEARTBEAT_INTERVAL,
            )

    # -- the connection -------------------------------------------------------------------

    def _connect(self) -> BaseDatabaseWrapper:
        if self._connection is None:
            options = self.dialect.heartbeat_options()
            connection = second_connection(self.using, self.alias, options)
            # Used by the worker's thread to register, by the heartbeat thread after.
            connection.inc_thread_sharing()
            self._connection = connection
        self._connection.ensure_connection()
        return self._connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        self._locked_on = None
        if connection is not None:
            with contextlib.suppress(DatabaseError):
                connection.close()
            connection.dec_thread_sharing()

    def _lock(self) -> bool:
        """Direct mode: hold the session lock on the current connection (again, if it is new)."""
        connection = self._connection
        assert connection is not None
        if self._locked_on is connection.connection:
            return True
        if not self._liveness_lock.hold_on(connection):
            return False
        self._locked_on = connection.connection
        return True

    # -- the row --------------------------------------------------------------------------

    def _rows(self) -> QuerySet[Worker]:
        # Registered in the calling thread's connections only (they are thread-local).
        assert self._connection is not None  # called once connected
        connections[self.alias] = self._connection
        return Worker.objects.using(self.alias).filter(name=self.worker)

    def _register(self) -> None:
        current, done, failures = self.snapshot()
        values = {
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "queues": self.queues,
            "mode": self.mode,
            "started_at": Now(),
            "heartbeat_at": Now(),
            "stopped_at": None,
            "lost_at": None,
            "current_job_id": current,
            "jobs_done": done,
            "failures": failures,
            "recovered": 0,
        }
        rows = self._rows()
        if self.mode == WorkerMode.POOLED:
            # No lock owns the name: take over only a row that is not a live worker's.
            rows = rows.filter(
                Q(stopped_at__isnull=False)
                | Q(lost_at__isnull=False)
                | Q(heartbeat_at__lt=seconds_ago(queue_settings.WORKER_TIMEOUT))
            )
        if rows.update(**values):
            self._registered = True
            return
        try:
            Worker.objects.using(self.alias).create(name=self.worker, **values)
        except IntegrityError:
            raise RuntimeError(f"Worker id {self.worker!r} is already in use.") from None
        self._registered = True

    # -- the heartbeat thread -------------------------------------------------------------

    def _beat_forever(self) -> None:
        interval = queue_settings.HEARTBEAT_INTERVAL
        stop = self._stop
        while not stop.wait(interval):
            try:
                # A lost connection is replaced at once, so the lock is back within a beat.
                if not self._beat() and not stop.is_set():
                    self._beat()
            except Exception:
                # Whatever it was, the next beat tries again: a thread that died would
                # have the worker taken for dead behind a pooler.
                logger.exception("Heartbeat of worker %s failed.", self.worker)
                self._close()
            if self.lost:
                return
        self._finish()

    def _beat(self) -> bool:
        """One heartbeat; False if the database could not be reached."""
        try:
            self._connect()
            if not self._registered:  # SQLite, when the write lock was busy at the start
                self._register()
                return True
            if self.mode == WorkerMode.DIRECT and not self._liveness_lock.per_process:
                # Cannot fail for long: only a backend of ours that is still exiting holds it.
                self._lock()
            current, done, failures = self.snapshot()
            updated = (
                self._rows()
                .filter(lost_at__isnull=True, stopped_at__isnull=True)
                .update(
                    heartbeat_at=Now(),
                    current_job_id=current,
                    jobs_done=done,
                    failures=failures,
                )
            )
        except DatabaseError as exc:
            # Quietly: the worker's own loop reports an unreachable database.
            logger.debug("Heartbeat of worker %s failed: %s", self.worker, exc)
            if self.dialect.exact_liveness:
                # A job holds the write lock (its own, or another worker's): this beat is
                # late, which is harmless where the lock alone tells who lives.
                return True
            self._close()
            return False
        if not updated:
            logger.warning(
                "Worker %s was declared lost (its heartbeat was late): a job it still runs "
                "will not commit, and it registers again under a new id before its next claim.",
                self.worker,
            )
            self.lost = True
            self._release_lock()
            self._close()
        return True

    def _finish(self) -> None:
        """The clean exit: the row says stopped, the lock is free, the connection closed."""
        try:
            _, done, failures = self.snapshot()
            self._connect()
            self._rows().filter(lost_at__isnull=True).update(
                stopped_at=Now(), current_job_id=None, jobs_done=done, failures=failures
            )
            self._release_lock()
        except DatabaseError as exc:
            logger.debug("Could not mark worker %s stopped: %s", self.worker, exc)
        finally:
            self._close()

    def _release_lock(self) -> None:
        connection = self._connection
        if connection is not None and self._locked_on is connection.connection:
            with contextlib.suppress(DatabaseError):
                self._liveness_lock.release(connection)
        self._locked_on = None
