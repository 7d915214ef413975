"""What every database does the same way, and the interface each dialect fills in.

A ``Dialect`` is bound to one database alias (``sql.dialect(using)`` picks and
caches it). The hot path's SQL is shared: a claim is one statement, an UPDATE of
the first due row that returns the whole row, so claiming costs one round trip;
the success update is fenced on the claim (status, attempt and worker). What
differs (row locking, object locks, liveness, wake-ups, statement limits, where
live progress is written) is each dialect's.
"""

from __future__ import annotations

import abc
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now

from ..conf import LEASE_BEATS, queue_settings
from ..limits import queue_limits
from ..models import Job, Progress, Worker, WorkerMode
from .claims import ClaimShape, claim_params, claim_sql, complete_sql, prune_rate_counts_sql

if TYPE_CHECKING:
    from django.db.models import Lookup


def second_connection(
    using: str, alias: str | None = None, options: dict[str, Any] | None = None
) -> BaseDatabaseWrapper:
    """A new connection to database ``using`` of its own, outside Django's pool.

    The one way the queue opens a side connection (heartbeats, PostgreSQL's live
    progress, the tracker, SQLite's unread look at running jobs). A clone of the
    alias's settings without ``OPTIONS["pool"]``: it never waits for a pooled
    connection the worker's own connection may hold (a pool of one), and what it
    holds (a session lock) never goes back to a pool with it. ``alias`` names it
    (default: ``using``), ``options`` are added to its ``OPTIONS``; the caller
    closes it. Not registered in ``connections``.
    """
    main = connections[using]
    settings = main.settings_dict.get("OPTIONS", {})
    merged = {**{k: v for k, v in settings.items() if k != "pool"}, **(options or {})}
    return type(main)({**main.settings_dict, "OPTIONS": merged}, alias or using)


def seconds_ago(seconds: float) -> ExpressionWrapper:
    """The database clock's now, ``seconds`` ago."""
    return ExpressionWrapper(Now() - timedelta(seconds=seconds), output_field=DateTimeField())


class ProgressStore(abc.ABC):
    """Where a database's live progress lives (``Dialect.progress_store()``)."""

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


class LivenessLock:
    """What tells other workers that a worker lives, beside its heartbeat.

    ``per_process`` locks (SQLite's flock) are taken once by ``acquire()`` and are
    exact: they vanish with the process and nothing else frees them. The others
    (PostgreSQL's session lock) live on the heartbeat's connection and are taken
    again by ``hold_on()`` when that connection is new.
    """

    per_process: ClassVar[bool] = False

    def acquire(self) -> None:
        """Take a per-process lock; ``RuntimeError`` if another process holds the name."""

    def hold_on(self, connection: BaseDatabaseWrapper) -> bool:
        """Hold the lock on ``connection``; False if another session holds it."""
        return True

    def release(self, connection: BaseDatabaseWrapper | None = None) -> None:
        """Free the lock (on ``connection``, where it lives on one)."""


class Waiter:
    """Sleep until a job may be due: polling here, LISTEN where the dialect can."""

    def __init__(self, using: str, *, polling: bool = False) -> None:
        self.using = using
        self.polling = polling

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if woken by a notification."""
        time.sleep(seconds)
        return False


class Dialect(abc.ABC):
    """One database's way of doing what differs; bound to the alias ``using``."""

    vendor: ClassVar[str]
    # The database clock's "now" as Django's Now() spells it; '%%' because params follow.
    now: ClassVar[str]
    # Appended to the claim's row choice (PostgreSQL: FOR UPDATE SKIP LOCKED).
    row_lock: ClassVar[str] = ""
    # Seconds since 1970 of ``now``, and how a positive number is rounded down.
    epoch: ClassVar[str]
    floor: ClassVar[str] = "FLOOR({})"
    # Whether a worker's liveness lock alone tells whether it lives (SQLite's flock);
    # elsewhere a free lock counts only with a late heartbeat.
    exact_liveness: ClassVar[bool] = False
    # Whether one writer at a time: a second connection cannot write while a job's
    # transaction runs (SQLite), so writes meant to be seen meanwhile wait for its end.
    single_writer: ClassVar[bool] = False
    # Whether a job takes its object locks itself (advisory locks), or its transaction
    # already excludes every other writer (SQLite's BEGIN IMMEDIATE).
    object_locks: ClassVar[bool] = False

    def __init__(self, using: str) -> None:
        self.using = using

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connections[self.using]

    # -- transactions and sessions ------------------------------------------------------

    @contextlib.contextmanager
    def job_transaction(self) -> Iterator[None]:
        """``transaction.atomic()`` for a worker's own writes."""
        with transaction.atomic(using=self.using):
            yield

    def prepare_session(self, *, pooled: bool) -> None:  # noqa: B027 (optional hook)
        """Once per connection of a worker, before its first job."""

    def limit_statements(  # noqa: B027 (optional hook)
        self, seconds: float | None, *, pooled: bool = False
    ) -> None:
        """Settings of the current (job) transaction: a statement time limit."""

    def limit_lock_wait(  # noqa: B027 (optional hook)
        self, seconds: float, connection: BaseDatabaseWrapper
    ) -> None:
        """In ``connection``'s current transaction, wait at most ``seconds`` for a row lock."""

    def hinted(self, few: bool | None, **lookup: Any) -> Q | Lookup:
        """The filter ``field[__lookup]=value``; see ``sql.sqlite.SQLite.hinted``."""
        return Q(**lookup)

    def database_now(self) -> datetime:
        """The database clock's current time (aware), which all job timestamps use."""
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT {self.now}", [])
            (value,) = cursor.fetchone()
        if isinstance(value, str):  # SQLite: UTC text
            value = datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value

    # -- the hot path ---------------------------------------------------------------------

    def claim(
        self,
        worker: str,
        *,
        job_id: int | None = None,
        queues: Sequence[str] = (),
        prefix: str = "",
    ) -> Job | None:
        """Mark the next due job (or job ``job_id``, due or not) running and return it.

        The attempt is counted here, in this committed statement, before the body
        runs: a job that kills its worker still uses up its attempts.
        """
        sql, names = claim_sql(self.claim_shape(job_id is not None, len(queues), bool(prefix)))
        params = claim_params(names, worker, job_id, queues, prefix)
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return None if row is None else self.job_from_row(row)

    def claim_shape(self, specific: bool, queues: int, prefix: bool) -> ClaimShape:
        return ClaimShape(
            self.now,
            self.epoch,
            self.floor,
            self.connection.ops.quote_name,
            self.row_lock,
            specific,
            queues,
            prefix,
            queue_limits(),
        )

    def reserve_job_id(self) -> tuple[int, datetime] | None:
        """A job id (and the database clock's now) taken before the row is written, where
        the database hands out ids apart from rows (a sequence); None elsewhere."""
        return None

    def prune_rate_counts(self, batch: int = 2000) -> int:
        """Delete the rate counts of windows that have ended; returns how many."""
        sql = prune_rate_counts_sql(self.claim_shape(False, 0, False))
        deleted = 0
        while True:
            with self.connection.cursor() as cursor:
                cursor.execute(sql, [batch])
                count = cursor.rowcount
            deleted += count
            if count < batch:
                return deleted

    def wake_workers(self) -> None:  # noqa: B027 (optional hook)
        """Wake the idle workers at once (where they sleep on a notification)."""

    def take_slots(self, groups: list[list[int]]) -> bool:
        """Take one free slot (a transaction-level lock) of each group; False if a group
        has none. Where one job runs at a time (SQLite), every limit holds already."""
        return True

    def complete(
        self,
        job: Job,
        worker: str,
        result: Any,
        progress: tuple[int, int | None, str] | None = None,
    ) -> bool:
        """The fenced success update (with the final progress, if any was reported).

        True if the row was still running under this claim.
        """
        connection = self.connection
        sql = complete_sql(self.now, connection.ops.quote_name, progress is not None)
        params = [Job._meta.get_field("result").get_db_prep_save(result, connection)]
        if progress is not None:
            params.extend(progress)
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, job.pk, job.attempts, worker])
            return cursor.rowcount == 1

    def job_from_row(self, row: Sequence[Any]) -> Job:
        """A Job from a raw row of all its columns, values converted as the ORM would."""
        connection = self.connection
        values = []
        for (column, converters), value in zip(_converters(connection), row, strict=True):
            for converter in converters:
                value = converter(value, column, connection)
            values.append(value)
        names = [field.attname for field in Job._meta.concrete_fields]
        return Job.from_db(self.using, names, values)

    # -- object locks ---------------------------------------------------------------------

    def take_locks(self, plan: list[tuple[int, bool]], *, wait: bool | float = False) -> bool:
        """Take transaction-level locks of ``plan``; False if any is held elsewhere."""
        return True

    @abc.abstractmethod
    def hold(
        self,
        keys: list[str],
        plan: list[tuple[int, bool]],
        *,
        wait: bool | float,
        refuse_if_running: Callable[[], None],
    ) -> bool:
        """``locks.hold()``'s database part: False if another session holds the locks.

        ``refuse_if_running()`` raises ``Conflict`` if a running job declared ``keys``,
        for a dialect that must ask before it can wait.
        """

    # -- liveness -------------------------------------------------------------------------

    @abc.abstractmethod
    def liveness_lock(self, worker: str) -> LivenessLock:
        """``worker``'s liveness lock."""

    @abc.abstractmethod
    def unlocked(self, workers: set[str]) -> set[str]:
        """The workers among ``workers`` whose liveness lock nobody holds."""

    def pooler(self, connection: BaseDatabaseWrapper) -> str:
        """What betrays a connection pooler on ``connection`` ("" for none)."""
        return ""

    def heartbeat_options(self) -> dict[str, Any] | None:
        """``OPTIONS`` of the heartbeat's connection."""
        return None

    def dead_workers(self, workers: set[str]) -> set[str]:
        """The workers among ``workers`` that died: their running jobs are the caller's.

        A worker found dead is marked lost by a conditional UPDATE that checks its
        heartbeat again, so of two rescuers only one gets it, and a worker that beat
        in the meantime is left alone. Workers already lost or stopped are dead too.
        """
        if not workers:
            return set()
        rows = Worker.objects.using(self.using).filter(name__in=workers)
        known = {
            name: (mode, ended)
            for name, mode, ended in rows.annotate(
                ended=ExpressionWrapper(
                    Q(lost_at__isnull=False) | Q(stopped_at__isnull=False),
                    output_field=BooleanField(),
                )
            ).values_list("name", "mode", "ended")
        }
        pooled = {name for name, (mode, _) in known.items() if mode == WorkerMode.POOLED}
        unlocked = self.unlocked(workers - pooled)
        late = {
            WorkerMode.DIRECT: seconds_ago(LEASE_BEATS * queue_settings.HEARTBEAT_INTERVAL),
            WorkerMode.POOLED: seconds_ago(queue_settings.WORKER_TIMEOUT),
        }
        live = rows.filter(lost_at__isnull=True, stopped_at__isnull=True)
        dead = set()
        for name in sorted(workers):
            if name not in known:
                if name in unlocked:  # no row (a worker of an older version): its lock decides
                    dead.add(name)
                continue
            mode, ended = known[name]
            if ended:
                dead.add(name)
                continue
            if name not in pooled and name not in unlocked:
                continue
            mark = live.filter(name=name)
            if not self.exact_liveness:  # a free lock counts with a late heartbeat only
                mark = mark.filter(heartbeat_at__lt=late[WorkerMode(mode)])
            if mark.update(lost_at=Now()):
                dead.add(name)
        return dead

    # -- wake-ups, progress, errors ---------------------------------------------------------

    def waiter(self, *, polling: bool = False) -> Waiter:
        return Waiter(self.using, polling=polling)

    @abc.abstractmethod
    def progress_store(self) -> ProgressStore:
        """Where this database's running jobs write their live progress."""

    def in_memory(self) -> bool:
        """Whether the database lives in this process's memory: no other connection sees it."""
        return False

    def is_connection_lost(self, exc: BaseException) -> bool:
        """Whether a database error means the job's connection was lost (infrastructure)."""
        return False

    def is_statement_timeout(self, exc: BaseException) -> bool:
        return False


def _converters(connection: BaseDatabaseWrapper) -> list[tuple[Any, list[Callable]]]:
    # Computed once per connection object: what the ORM applies to each column.
    cached = connection.__dict__.get("_async_queue_converters")
    if cached is None:
        cached = []
        for field in Job._meta.concrete_fields:
            column = field.get_col(Job._meta.db_table)
            converters = connection.ops.get_db_converters(column)
            cached.append((column, converters + column.get_db_converters(connection)))
        connection.__dict__["_async_queue_converters"] = cached
    return cached
