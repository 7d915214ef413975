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
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from .models import Job, Status

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


def now_sql(connection: BaseDatabaseWrapper) -> str:
    try:
        return _NOW[connection.vendor]
    except KeyError:
        raise NotImplementedError(
            f"async_queue supports PostgreSQL and SQLite, not {connection.vendor}."
        ) from None


def _columns(connection: BaseDatabaseWrapper) -> str:
    quote = connection.ops.quote_name
    return ", ".join(quote(field.column) for field in Job._meta.concrete_fields)


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
    quote = connection.ops.quote_name
    table = quote(Job._meta.db_table)
    now = now_sql(connection)
    params: list[Any] = [worker]
    if job_id is not None:
        target = "%s"
        params.append(job_id)
    else:
        where = [f"status = '{Status.QUEUED}'", f"run_after <= {now}"]
        if queues:
            where.append(f"queue IN ({', '.join(['%s'] * len(queues))})")
            params.extend(queues)
        if prefix:
            where.append("SUBSTR(name, 1, %s) = %s")
            params.extend([len(prefix), prefix])
        lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
        target = (
            f"SELECT id FROM {table} WHERE {' AND '.join(where)} "
            f"ORDER BY priority DESC, run_after, id LIMIT 1{lock}"
        )
    sql = (
        f"UPDATE {table} SET status = '{Status.RUNNING}', attempts = attempts + 1, "
        f"started_at = {now}, finished_at = NULL, worker = %s "
        f"WHERE id = ({target}) AND status = '{Status.QUEUED}' "
        f"RETURNING {_columns(connection)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else job_from_row(using, row)


def job_from_row(using: str, row: Sequence[Any]) -> Job:
    """Build a Job from a raw row of all its columns, converting values as the ORM would."""
    connection = connections[using]
    fields = Job._meta.concrete_fields
    values = []
    for field, value in zip(fields, row, strict=True):
        column = field.get_col(Job._meta.db_table)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        for converter in converters:
            value = converter(value, column, connection)
        values.append(value)
    return Job.from_db(using, [field.attname for field in fields], values)


def database_now(using: str) -> datetime:
    """The database clock's current time (aware), which all job timestamps use."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {now_sql(connection)}", [])
        (value,) = cursor.fetchone()
    if isinstance(value, str):  # SQLite: UTC text
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value
