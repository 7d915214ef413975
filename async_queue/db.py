"""The database-specific SQL of the hot path, for PostgreSQL and SQLite side by side.

A claim is one statement: an UPDATE of the first due row that returns the whole
row, so claiming costs a single round trip. PostgreSQL picks the row with
``FOR UPDATE SKIP LOCKED`` (concurrent workers never wait on each other and
never take the same row); SQLite has one writer at a time, so the same UPDATE
is already serialized there, and the outer ``status = 'queued'`` re-check
makes a lost race claim nothing instead of claiming twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, DateTimeField, ExpressionWrapper, F, Lookup, Q
from django.db.models.functions import Now
from django.db.models.lookups import Exact, In

from .conf import LEASE_BEATS, queue_settings
from .models import Job, JobLock, Status, Worker, WorkerMode

# Both backends' "now" as Django's Now() spells it; '%%' because params follow.
_NOW = {
    "postgresql": "STATEMENT_TIMESTAMP()",
    "sqlite": "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW')",
}


@contextlib.contextmanager
def job_transaction(using: str) -> Iterator[None]:
    """``transaction.atomic()`` for a worker's own writes.

    On SQLite it begins with ``BEGIN IMMEDIATE``: the write lock is taken (waiting
    up to the busy timeout) before the job body reads anything, so the body can
    never fail midway with "database is locked" because another connection wrote
    after its first read. Other connections of the project keep Django's default.
    """
    connection = connections[using]
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic(using=using):
            yield
        return
    connection.ensure_connection()
    previous = connection.transaction_mode
    connection.transaction_mode = "IMMEDIATE"
    try:
        with transaction.atomic(using=using):
            connection.transaction_mode = previous
            yield
    finally:
        connection.transaction_mode = previous


_HINTABLE: dict[str, type[Lookup]] = {"exact": Exact, "in": In}


@functools.cache
def _hinted_lookup(lookup: type[Lookup], function: str) -> type[Lookup]:
    """``lookup`` whose SQL is wrapped in SQLite's ``likely()`` or ``unlikely()``."""

    def as_sql(self: Lookup, compiler: Any, connection: BaseDatabaseWrapper) -> tuple[str, Any]:
        sql, params = lookup.as_sql(self, compiler, connection)
        return f"{function}({sql})", params

    return type(f"{function.title()}{lookup.__name__}", (lookup,), {"as_sql": as_sql})


def hinted(using: str, few: bool | None, **lookup: Any) -> Q | Lookup:
    """The filter ``field[__lookup]=value`` and what the caller knows of how many rows match.

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
    ((path, value),) = lookup.items()
    if few is None or connections[using].vendor != "sqlite":
        return Q(**{path: value})
    field, _, name = path.partition("__")
    lookup_class = _HINTABLE[name or "exact"]
    hinted_class = _hinted_lookup(lookup_class, "unlikely" if few else "likely")
    return hinted_class(F(field), value)


def second_connection(
    using: str, alias: str | None = None, options: dict[str, Any] | None = None
) -> BaseDatabaseWrapper:
    """A new connection to database ``using`` of its own, outside Django's pool.

    A clone of the alias's settings without ``OPTIONS["pool"]``: it never waits for
    a pooled connection the worker's own connection may hold (a pool of one), and
    what it holds (a session lock) never goes back to a pool with it. ``alias``
    names it (default: ``using``), ``options`` are added to its ``OPTIONS``; the
    caller closes it. Not registered in ``connections``.
    """
    main = connections[using]
    settings = main.settings_dict.get("OPTIONS", {})
    merged = {**{k: v for k, v in settings.items() if k != "pool"}, **(options or {})}
    return type(main)({**main.settings_dict, "OPTIONS": merged}, alias or using)


def now_sql(connection: BaseDatabaseWrapper) -> str:
    try:
        return _NOW[connection.vendor]
    except KeyError:
        raise ImproperlyConfigured(
            f"async_queue supports PostgreSQL and SQLite, not {connection.vendor}."
        ) from None


@functools.lru_cache(maxsize=64)
def _claim_sql(
    vendor: str, quote: Callable[[str], str], specific: bool, queues: int, prefix: bool
) -> str:
    table = quote(Job._meta.db_table)
    now = _NOW[vendor]
    if specific:
        target = "%s"
    else:
        where = [
            f"status = '{Status.QUEUED}'",
            f"run_after <= {now}",
            # A group's final job waits until no other job of the group is unfinished.
            f"(NOT waits_for_group OR NOT EXISTS (SELECT 1 FROM {table} AS sibling "
            f"WHERE sibling.group_id = {table}.group_id AND sibling.id <> {table}.id "
            f"AND sibling.status IN ('{Status.QUEUED}', '{Status.RUNNING}')))",
        ]
        if queues:
            where.append(f"queue IN ({', '.join(['%s'] * queues)})")
        if prefix:
            where.append("SUBSTR(name, 1, %s) = %s")
        lock = " FOR UPDATE SKIP LOCKED" if vendor == "postgresql" else ""
        target = (
            f"SELECT id FROM {table} WHERE {' AND '.join(where)} "
            f"ORDER BY priority DESC, run_after, id LIMIT 1{lock}"
        )
    columns = ", ".join(quote(field.column) for field in Job._meta.concrete_fields)
    return (
        f"UPDATE {table} SET status = '{Status.RUNNING}', attempts = attempts + 1, "
        f"started_at = {now}, finished_at = NULL, worker = %s "
        f"WHERE id = ({target}) AND status = '{Status.QUEUED}' "
        f"RETURNING {columns}"
    )


def claim(
    using: str,
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
    connection = connections[using]
    now_sql(connection)  # refuses an unsupported database with a clear error
    sql = _claim_sql(
        connection.vendor, connection.ops.quote_name, job_id is not None, len(queues), bool(prefix)
    )
    params: list[Any] = [worker]
    if job_id is not None:
        params.append(job_id)
    else:
        params.extend(queues)
        if prefix:
            params.extend([len(prefix), prefix])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else job_from_row(using, row)


def complete(
    using: str,
    job: Job,
    worker: str,
    result: Any,
    progress: tuple[int, int | None, str] | None = None,
) -> bool:
    """The fenced success update (with the final progress, if any was reported).

    True if the row was still running under this claim.
    """
    connection = connections[using]
    sql = _complete_sql(connection.vendor, connection.ops.quote_name, progress is not None)
    params = [Job._meta.get_field("result").get_db_prep_save(result, connection)]
    if progress is not None:
        params.extend(progress)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, job.pk, job.attempts, worker])
        return cursor.rowcount == 1


@functools.lru_cache(maxsize=8)
def _complete_sql(vendor: str, quote: Callable[[str], str], progress: bool) -> str:
    now = _NOW[vendor]
    progress_sql = (
        f", progress_current = %s, progress_total = %s, progress_message = %s, "
        f"progress_updated_at = {now}"
        if progress
        else ""
    )
    return (
        f"UPDATE {quote(Job._meta.db_table)} SET status = '{Status.SUCCEEDED}', "
        f"result = %s, finished_at = {now}{progress_sql} "
        f"WHERE id = %s AND status = '{Status.RUNNING}' AND attempts = %s AND worker = %s"
    )


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


def job_from_row(using: str, row: Sequence[Any]) -> Job:
    """Build a Job from a raw row of all its columns, converting values as the ORM would."""
    connection = connections[using]
    values = []
    for (column, converters), value in zip(_converters(connection), row, strict=True):
        for converter in converters:
            value = converter(value, column, connection)
        values.append(value)
    return Job.from_db(using, [field.attname for field in Job._meta.concrete_fields], values)


def database_now(using: str) -> datetime:
    """The database clock's current time (aware), which all job timestamps use."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {now_sql(connection)}", [])
        (value,) = cursor.fetchone()
    if isinstance(value, str):  # SQLite: UTC text
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


# -- object locks ---------------------------------------------------------------------

_TRY_LOCKS = (
    "SELECT k FROM unnest(%s::bigint[], %s::boolean[]) WITH ORDINALITY AS t(k, x, n) "
    "WHERE NOT (CASE WHEN x THEN pg_try_advisory_xact_lock(k) "
    "ELSE pg_try_advisory_xact_lock_shared(k) END) ORDER BY n"
)


def take_locks(using: str, plan: list[tuple[int, bool]], *, wait: bool | float = False) -> bool:
    """Take transaction-level advisory locks (PostgreSQL); False if any is held elsewhere.

    Without ``wait`` this is one statement that never blocks. With ``wait`` the
    locks are taken one by one in ascending id order (so two waiters cannot
    deadlock), waiting at most ``wait`` seconds if it is a number.
    """
    if not plan:
        return True
    connection = connections[using]
    with connection.cursor() as cursor:
        if not wait:
            cursor.execute(_TRY_LOCKS, [[k for k, _ in plan], [x for _, x in plan]])
            return cursor.fetchone() is None
        try:
            with transaction.atomic(using=using):
                if wait is not True:
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{wait}s"])
                for key, exclusive in plan:
                    function = (
                        "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
                    )
                    cursor.execute(f"SELECT {function}(%s)", [key])
                cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
        except OperationalError:
            return False
    return True


def take_write_lock(using: str, *, wait: bool = True) -> bool:
    """SQLite: take the database's write lock now; False if another writer holds it.

    With ``wait`` it waits up to the busy timeout (then raises ``OperationalError``).
    Without, it fails at once and leaves the transaction unread: SQLite only waits
    for the write lock in a transaction that has not read yet (a reader asking to
    write while another connection writes gets "database is locked" at once).
    """
    connection = connections[using]
    with connection.cursor() as cursor:
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


def declared_by_running_job(using: str, keys: Sequence[str]) -> bool:
    """SQLite: whether a running job declared any of ``keys``.

    Asked on a connection of its own, so that the caller's transaction stays unread
    and may still wait for the write lock (see ``take_write_lock``).
    """
    side = second_connection(using)
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


def take_job_locks(using: str, job: Job) -> bool:
    """Take the object locks ``job`` declared, inside its transaction; False if busy."""
    from .locks import lock_plan

    if not job.has_locks or connections[using].vendor != "postgresql":
        # SQLite: the job's BEGIN IMMEDIATE already excludes every other writer.
        return True
    keys = JobLock.objects.using(using).filter(job_id=job.pk).values_list("key", flat=True)
    return take_locks(using, lock_plan(keys))


# -- worker liveness --------------------------------------------------------------------
#
# Every worker has a Worker row whose heartbeat_at it refreshes every
# HEARTBEAT_INTERVAL seconds on a connection of its own (``liveness.Lease``). How
# the others tell that it died depends on its path to the database (its row's mode):
#
# - **direct** (PostgreSQL): it also holds a session advisory lock on that
#   connection, in the two-integer key space (which cannot collide with the bigint
#   space of object locks). The lock vanishes with the process, so a kill -9 is
#   noticed within seconds. A lost connection loses the lock too (the worker takes
#   it again at its next beat), so a worker is dead only when its lock is free *and*
#   its heartbeat is older than LEASE_BEATS intervals.
# - **pooled** (behind PgBouncer or another pooler, where a session lock would stay
#   on a server connection after the worker died, or move away from a live one): no
#   lock; a worker is dead when its heartbeat is older than WORKER_TIMEOUT.
# - **SQLite**: an flock() on a file next to the database, held by the process; the
#   row and its heartbeat are for the dashboard.
#
# Whoever finds a worker dead marks its row lost with a conditional UPDATE (one
# rescuer wins) and recovers its running jobs. A running job whose worker has a
# lost or stopped row, or no row and no lock, is recovered too.


def _liveness_key(worker: str) -> tuple[int, int]:
    from .locks import lock_id

    value = lock_id(f"worker:{worker}") & 0xFFFFFFFFFFFFFFFF
    high, low = value >> 32, value & 0xFFFFFFFF
    return (
        high - (1 << 32) if high >= 1 << 31 else high,
        low - (1 << 32) if low >= 1 << 31 else low,
    )


def pooler(connection: BaseDatabaseWrapper) -> str:
    """PostgreSQL: what betrays a connection pooler between ``connection`` and the server.

    "" for a direct connection. Behind a pooler the server process that runs our
    statements is not the one the connection was told about at its start (PgBouncer
    makes one up), and with transaction pooling it may change between two
    transactions. Refuses statement pooling, which cannot run a job's transaction.
    """
    connection.ensure_connection()
    told = getattr(getattr(connection.connection, "info", None), "backend_pid", None)
    pids = []
    with connection.cursor() as cursor:
        try:
            cursor.execute("BEGIN")
            for _ in range(2):
                cursor.execute("SELECT pg_backend_pid()")
                pids.append(cursor.fetchone()[0])
            cursor.execute("COMMIT")
        except DatabaseError as exc:
            if "statement pooling" in str(exc):
                raise ImproperlyConfigured(
                    f"The database connection goes through a pooler in statement pooling mode "
                    f"({exc}). A job runs in one transaction: use transaction (or session) "
                    "pooling for the workers' database settings, or connect them directly."
                ) from exc
            raise
        cursor.execute("SELECT pg_backend_pid()")
        pids.append(cursor.fetchone()[0])
    if pids[0] != pids[1]:
        raise ImproperlyConfigured(
            "The database connection goes through a pooler that moved one transaction between "
            f"two server processes ({pids[0]}, {pids[1]}): a job runs in one transaction. Use "
            "transaction (or session) pooling for the workers, or connect them directly."
        )
    if pids[2] != pids[0]:
        return (
            f"transaction pooling: the server process changed between two transactions "
            f"({pids[0]}, then {pids[2]})"
        )
    if told is not None and told != pids[0]:
        return f"the connection was told of server process {told}, the server runs {pids[0]}"
    return ""


def take_session_lock(connection: BaseDatabaseWrapper, worker: str) -> bool:
    """PostgreSQL, direct connections: hold ``worker``'s liveness lock on ``connection``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", _liveness_key(worker))
        return bool(cursor.fetchone()[0])


def release_session_lock(connection: BaseDatabaseWrapper, worker: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", _liveness_key(worker))


def _liveness_dir(using: str) -> Path:
    name = Path(str(connections[using].settings_dict["NAME"]))
    return name.parent / f"{name.name}.workers"


def _file_name(worker: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in worker) + ".lock"


class FileLock:
    """SQLite: the flock() a worker process holds on a file next to the database while it lives."""

    def __init__(self, using: str, worker: str) -> None:
        self.using = using
        self.worker = worker
        self._file: Any = None

    def acquire(self) -> None:
        if self._file is not None:
            return
        directory = _liveness_dir(self.using)
        directory.mkdir(exist_ok=True)
        handle = open(directory / _file_name(self.worker), "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(f"Worker id {self.worker!r} is already in use.") from None
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._file.name)
            self._file.close()
            self._file = None


def _unlocked(using: str, workers: set[str]) -> set[str]:
    """The workers among ``workers`` whose liveness lock (or flock) nobody holds."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT classid::bigint, objid::bigint FROM pg_locks "
                "WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            held = set(cursor.fetchall())
        return {
            worker
            for worker in workers
            if tuple(k & 0xFFFFFFFF for k in _liveness_key(worker)) not in held
        }
    directory = _liveness_dir(using)
    free = set()
    for worker in workers:
        path = directory / _file_name(worker)
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


def seconds_ago(seconds: float) -> ExpressionWrapper:
    """The database clock's now, ``seconds`` ago."""
    return ExpressionWrapper(Now() - timedelta(seconds=seconds), output_field=DateTimeField())


def dead_workers(using: str, workers: set[str]) -> set[str]:
    """The workers among ``workers`` that died: their running jobs are this caller's to recover.

    A worker found dead is marked lost by a conditional UPDATE that checks its
    heartbeat again, so of two rescuers only one gets it, and a worker that beat
    in the meantime is left alone. Workers already lost or stopped are dead too.
    """
    if not workers:
        return set()
    connection = connections[using]
    now_sql(connection)  # refuses an unsupported database with a clear error
    rows = Worker.objects.using(using).filter(name__in=workers)
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
    unlocked = _unlocked(using, workers - pooled)
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
        if connection.vendor != "sqlite":  # SQLite's flock is exact; elsewhere ask the lease
            mark = mark.filter(heartbeat_at__lt=late[mode])
        if mark.update(lost_at=Now()):
            dead.add(name)
    return dead


# -- wake-ups -----------------------------------------------------------------------------

CHANNEL = "async_queue"


class Waiter:
    """Sleep until a job may be due: LISTEN/NOTIFY on PostgreSQL, polling elsewhere.

    ``polling``: poll on PostgreSQL too. Behind a pooler with transaction pooling
    a LISTEN stays on the server connection it ran on, so it never delivers.
    """

    def __init__(self, using: str, *, polling: bool = False) -> None:
        self.using = using
        self.polling = polling
        self._listening_on: object | None = None

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if woken by a notification."""
        connection = connections[self.using]
        if connection.vendor != "postgresql" or self.polling:
            time.sleep(seconds)
            return False
        connection.ensure_connection()
        raw = connection.connection
        if self._listening_on is not raw:
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
            self._listening_on = raw
        with connection.wrap_database_errors:  # psycopg errors -> django.db errors
            return any(True for _ in raw.notifies(timeout=seconds, stop_after=1))


# -- the job connection -------------------------------------------------------------------


def prepare_session(using: str, *, pooled: bool) -> None:
    """PostgreSQL, direct: let the worker's connection idle inside a job's transaction.

    A job may wait inside its transaction (on an API, on a lock) for longer than an
    ``idle_in_transaction_session_timeout`` set for the database or role, which
    would end the session and fail every attempt. Set once per session; behind a
    pooler a session setting would land on some server connection, so there
    ``limit_statements`` sets it per transaction instead.
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or pooled:
        return
    connection.ensure_connection()
    raw = connection.connection
    if connection.__dict__.get("_async_queue_prepared") is raw:
        return
    with connection.cursor() as cursor:
        cursor.execute("SET idle_in_transaction_session_timeout = 0")
    connection.__dict__["_async_queue_prepared"] = raw


def limit_statements(using: str, seconds: float | None, *, pooled: bool = False) -> None:
    """PostgreSQL: settings of the current (job) transaction, in one statement.

    Cancels any statement running past ``seconds``; behind a pooler (``pooled``)
    also lifts ``idle_in_transaction_session_timeout`` (see ``prepare_session``).
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or not (seconds or pooled):
        return
    settings, params = [], []
    if seconds:
        settings.append("set_config('statement_timeout', %s, true)")
        params.append(f"{int(seconds * 1000)}ms")
    if pooled:
        settings.append("set_config('idle_in_transaction_session_timeout', '0', true)")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(settings)}", params)


# SQLSTATEs of a connection the server ended or lost (not of anything the job did).
_CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")


def is_connection_lost(exc: BaseException, using: str) -> bool:
    """Whether a database error means the job's connection was lost (an infrastructure loss).

    The server ended it (administrator command, crash or shutdown), the link broke
    (SQLSTATE class 08), or the connection is no longer usable at all.
    """
    sqlstate = getattr(getattr(exc.__cause__, "diag", None), "sqlstate", None) or ""
    if sqlstate.startswith(_CONNECTION_LOST):
        return True
    if connections[using].vendor != "postgresql":
        return False  # SQLite's errors (locked, I/O) are never a lost connection
    try:
        return not connections[using].is_usable()
    except Exception:
        return True


def is_statement_timeout(exc: BaseException) -> bool:
    cause = exc.__cause__
    return getattr(getattr(cause, "diag", None), "sqlstate", None) == "57014"


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
