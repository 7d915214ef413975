"""Forging job rows whose JSON columns hold what ``schedule()`` would refuse.

The text goes straight into the column with SQL, as someone with database access
(or an older version of the app) could write it. On PostgreSQL the column is
``jsonb``, which parses what it stores and refuses values nested deeper than its
stack allows: ``deepest()`` finds that depth. On SQLite the column is text with a
``JSON_VALID`` check that a writer can turn off (``PRAGMA ignore_check_constraints``),
so any text at all can be stored, invalid JSON included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import DatabaseError, connection, transaction

from async_queue import Job

TABLE = Job._meta.db_table


def nested_list(depth: int) -> str:
    """``[[[...]]]``: ``depth`` nested JSON arrays."""
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    """``{"k": {"k": ... {}}}``: ``depth`` nested JSON objects."""
    return '{"k": ' * (depth - 1) + "{}" + "}" * (depth - 1)


@contextlib.contextmanager
def checks_off() -> Iterator[None]:
    """On SQLite, let any text into the JSON columns (their CHECK is not enforced)."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA ignore_check_constraints = ON")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA ignore_check_constraints = OFF")


def forge(job_id: int, **columns: str) -> None:
    """Write each column's raw text into job ``job_id`` (``args='[[[...]]]'``)."""
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    assignments = ", ".join(f"{connection.ops.quote_name(c)} = %s{cast}" for c in columns)
    with checks_off(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET {assignments} WHERE id = %s", [*columns.values(), job_id]
        )


def stores(job_id: int, text: str) -> bool:
    """Whether the database stores ``text`` in a JSON column (tried in a savepoint)."""
    try:
        with transaction.atomic():
            forge(job_id, meta=text)
            transaction.set_rollback(True)
    except DatabaseError:
        return False
    return True


def deepest(job_id: int, wanted: int) -> int:
    """The deepest nesting up to ``wanted`` that a JSON column stores (bisection)."""
    if stores(job_id, nested_list(wanted)) and stores(job_id, nested_object(wanted)):
        return wanted
    low, high = 1, wanted  # stores low, refuses high
    while high - low > 1:
        middle = (low + high) // 2
        if stores(job_id, nested_list(middle)) and stores(job_id, nested_object(middle)):
            low = middle
        else:
            high = middle
    return low
