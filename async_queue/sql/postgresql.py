"""PostgreSQL: row locks that skip, advisory locks, session-locked liveness, LISTEN.

- The claim picks its row with ``FOR UPDATE SKIP LOCKED``: concurrent workers
  never wait on each other and never take the same row.
- Object locks are transaction-level advisory locks (ids from ``keys.lock_plan``),
  taken in ascending id order in one statement that never blocks.
- A worker on a direct connection holds a session advisory lock in the
  two-integer key space (which cannot collide with the bigint space of object
  locks) on its heartbeat's connection: it vanishes with the process, so a
  kill -9 is noticed within seconds. A lost connection loses the lock too (the
  worker takes it again at its next beat), so a worker is dead only when its lock
  is free *and* its heartbeat is older than LEASE_BEATS intervals. Behind a
  pooler (``pooler()`` tells) no lock is held and only the heartbeat counts.
- Idle workers sleep on LISTEN, woken by the NOTIFY of a trigger on insert.
- Live progress is written to the job row through a second connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.functions import Now

from ..keys import lock_id
from ..models import Job, Progress, Status
from .base import Dialect, LivenessLock, ProgressStore, Waiter, second_connection
from .claims import count_start_sql

logger = logging.getLogger("async_queue.progress")

CHANNEL = "async_queue"
# Claims in a row that may lose a rate window's last start to another worker.
RATE_RACES = 3

_TRY_LOCKS = (
    "SELECT k FROM unnest(%s::bigint[], %s::boolean[]) WITH ORDINALITY AS t(k, x, n) "
    "WHERE NOT (CASE WHEN x THEN pg_try_advisory_xact_lock(k) "
    "ELSE pg_try_advisory_xact_lock_shared(k) END) ORDER BY n"
)

# SQLSTATEs of a connection the server ended or lost (not of anything the job did).
_CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")


def liveness_key(worker: str) -> tuple[int, int]:
    """``worker``'s session lock key, in the two-integer advisory key space."""
    value = lock_id(f"worker:{worker}") & 0xFFFFFFFFFFFFFFFF
    high, low = value >> 32, value & 0xFFFFFFFF
    return (
        high - (1 << 32) if high >= 1 << 31 else high,
        low - (1 << 32) if low >= 1 << 31 else low,
    )


class SessionLock(LivenessLock):
    """A direct connection's session advisory lock on the worker's name."""

    def __init__(self, worker: str) -> None:
        self.key = liveness_key(worker)

    def hold_on(self, connection: BaseDatabaseWrapper) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", self.key)
            return bool(cursor.fetchone()[0])

    def release(self, connection: BaseDatabaseWrapper | None = None) -> None:
        if connection is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", self.key)


class ListeningWaiter(Waiter):
    """LISTEN/NOTIFY; polls when ``polling`` (behind a pooler with transaction pooling a
    LISTEN stays on the server connection it ran on, so it never delivers)."""

    def __init__(self, using: str, *, polling: bool = False) -> None:
        super().__init__(using, polling=polling)
        self._listening_on: object | None = None

    def wait(self, seconds: float) -> bool:
        if self.polling:
            return super().wait(seconds)
        connection = connections[self.using]
        connection.ensure_connection()
        raw = connection.connection
        if self._listening_on is not raw:
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
            self._listening_on = raw
        with connection.wrap_database_errors:  # psycopg errors -> django.db errors
            return any(True for _ in raw.notifies(timeout=seconds, stop_after=1))


class RowStore(ProgressStore):
    """The job row itself, written through a second connection."""

    def __init__(self, dialect: PostgreSQL) -> None:
        self.using = dialect.using
        self._connection: BaseDatabaseWrapper | None = None
        table = dialect.connection.ops.quote_name(Job._meta.db_table)
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


class PostgreSQL(Dialect):
    vendor = "postgresql"
    now = "STATEMENT_TIMESTAMP()"
    row_lock = " FOR UPDATE SKIP LOCKED"
    epoch = "EXTRACT(EPOCH FROM STATEMENT_TIMESTAMP())"
    object_locks = True

    # -- sessions -----------------------------------------------------------------------

    def prepare_session(self, *, pooled: bool) -> None:
        """Direct connections: let the worker's connection idle inside a job's transaction.

        A job may wait inside its transaction (on an API, on a lock) for longer than an
        ``idle_in_transaction_session_timeout`` set for the database or role, which
        would end the session and fail every attempt. Set once per session; behind a
        pooler a session setting would land on some server connection, so there
        ``limit_statements`` sets it per transaction instead.
        """
        if pooled:
            return
        connection = self.connection
        connection.ensure_connection()
        raw = connection.connection
        if connection.__dict__.get("_async_queue_prepared") is raw:
            return
        with connection.cursor() as cursor:
            cursor.execute("SET idle_in_transaction_session_timeout = 0")
        connection.__dict__["_async_queue_prepared"] = raw

    def limit_statements(self, seconds: float | None, *, pooled: bool = False) -> None:
        """Settings of the current (job) transaction, in one statement.

        Cancels any statement running past ``seconds``; behind a pooler (``pooled``)
        also lifts ``idle_in_transaction_session_timeout`` (see ``prepare_session``).
        """
        if not (seconds or pooled):
            return
        settings, params = [], []
        if seconds:
            settings.append("set_config('statement_timeout', %s, true)")
            params.append(f"{int(seconds * 1000)}ms")
        if pooled:
            settings.append("set_config('idle_in_transaction_session_timeout', '0', true)")
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(settings)}", params)

    def limit_lock_wait(self, seconds: float, connection: BaseDatabaseWrapper) -> None:
        # For this transaction only, so that it holds behind a transaction pooler too.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)", [f"{int(seconds * 1000)}ms"]
            )

    # -- object locks ---------------------------------------------------------------------

    def take_locks(self, plan: list[tuple[int, bool]], *, wait: bool | float = False) -> bool:
        """Transaction-level advisory locks; False if any is held elsewhere.

        Without ``wait`` this is one statement that never blocks. With ``wait`` the
        locks are taken one by one in ascending id order (so two waiters cannot
        deadlock), waiting at most ``wait`` seconds if it is a number.
        """
        if not plan:
            return True
        with self.connection.cursor() as cursor:
            if not wait:
                cursor.execute(_TRY_LOCKS, [[k for k, _ in plan], [x for _, x in plan]])
                return cursor.fetchone() is None
            try:
                with transaction.atomic(using=self.using):
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

    def claim(
        self,
        worker: str,
        *,
        job_id: int | None = None,
        queues: Sequence[str] = (),
        prefix: str = "",
    ) -> Job | None:
        """The claim, then the count of a rate-limited job's start.

        The claim's filter saw room in the window, but so may a concurrent claim: the
        count is a conditional upsert on the latest row, so only one of them counts
        the last start. The other job goes back to wait for the next window (no
        attempt used), and the next due job is claimed instead.
        """
        for _ in range(RATE_RACES):
            job = super().claim(worker, job_id=job_id, queues=queues, prefix=prefix)
            if job is None or job.rate_key is None:
                return job
            # Job.execute() runs the job whatever the rate, but its start counts.
            limit = job.rate_limit if job_id is None else 2**31 - 1
            with self.connection.cursor() as cursor:
                cursor.execute(count_start_sql(self.claim_shape(False, 0, False)), [job.pk, limit])
                if cursor.fetchone() is not None:
                    return job
            period, started = job.rate_period or 1.0, job.started_at
            job.defer(worker, period - (started.timestamp() % period) if started else period)
        return None

    def reserve_job_id(self) -> tuple[int, datetime] | None:
        table = self.connection.ops.quote_name(Job._meta.db_table)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT nextval(pg_get_serial_sequence(%s, %s)), {self.now}",
                [table, Job._meta.pk.column],
            )
            job_id, now = cursor.fetchone()
        return job_id, now

    def wake_workers(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])

    def take_slots(self, groups: list[list[int]]) -> bool:
        """One statement: per group, the first slot whose lock is free (tried in order,
        and only until one is taken), all groups or none usable."""
        if not groups:
            return True
        free = " AND ".join(
            "EXISTS (SELECT 1 FROM unnest(%s::bigint[]) AS slot(id) "
            "WHERE pg_try_advisory_xact_lock(slot.id) LIMIT 1)"
            for _ in groups
        )
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT {free}", groups)
            return bool(cursor.fetchone()[0])

    def hold(
        self,
        keys: list[str],
        plan: list[tuple[int, bool]],
        *,
        wait: bool | float,
        refuse_if_running: Callable[[], None],
    ) -> bool:
        return self.take_locks(plan, wait=wait)

    # -- liveness -------------------------------------------------------------------------

    def liveness_lock(self, worker: str) -> LivenessLock:
        return SessionLock(worker)

    def unlocked(self, workers: set[str]) -> set[str]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT classid::bigint, objid::bigint FROM pg_locks "
                "WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            held = set(cursor.fetchall())
        return {
            worker
            for worker in workers
            if tuple(k & 0xFFFFFFFF for k in liveness_key(worker)) not in held
        }

    def pooler(self, connection: BaseDatabaseWrapper) -> str:
        """What betrays a connection pooler between ``connection`` and the server.

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
                        "The database connection goes through a pooler in statement pooling "
                        f"mode ({exc}). A job runs in one transaction: use transaction (or "
                        "session) pooling for the workers' database settings, or connect "
                        "them directly."
                    ) from exc
                raise
            cursor.execute("SELECT pg_backend_pid()")
            pids.append(cursor.fetchone()[0])
        if pids[0] != pids[1]:
            raise ImproperlyConfigured(
                "The database connection goes through a pooler that moved one transaction "
                f"between two server processes ({pids[0]}, {pids[1]}): a job runs in one "
                "transaction. Use transaction (or session) pooling for the workers, or "
                "connect them directly."
            )
        if pids[2] != pids[0]:
            return (
                f"transaction pooling: the server process changed between two transactions "
                f"({pids[0]}, then {pids[2]})"
            )
        if told is not None and told != pids[0]:
            return f"the connection was told of server process {told}, the server runs {pids[0]}"
        return ""

    # -- wake-ups, progress, errors ---------------------------------------------------------

    def waiter(self, *, polling: bool = False) -> Waiter:
        return ListeningWaiter(self.using, polling=polling)

    def progress_store(self) -> ProgressStore:
        return RowStore(self)

    def is_connection_lost(self, exc: BaseException) -> bool:
        """The server ended the connection (administrator command, crash or shutdown),
        the link broke (SQLSTATE class 08), or the connection is no longer usable."""
        if _sqlstate(exc).startswith(_CONNECTION_LOST):
            return True
        try:
            return not self.connection.is_usable()
        except Exception:
            return True

    def is_statement_timeout(self, exc: BaseException) -> bool:
        return _sqlstate(exc) == "57014"


def _sqlstate(exc: BaseException) -> str:
    return getattr(getattr(exc.__cause__, "diag", None), "sqlstate", None) or ""
