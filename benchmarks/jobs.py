"""The benchmark's jobs, declared by exact name in ``benchmarks.settings``.

This module imports nothing at import time: the raw psycopg loops share its SQL
and must not import Django.
"""

from __future__ import annotations

COUNTER_TABLE = "async_queue_bench_counter"
COUNTER_ROWS = 1000
BUMP_SQL = f"UPDATE {COUNTER_TABLE} SET n = n + 1 WHERE id = %s"


def noop() -> None:
    """The no-op job."""


def bump(row: int) -> None:
    """Add one to a counter row: a job whose body is one UPDATE."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(BUMP_SQL, [row])


def backend_pid() -> int:
    """The PostgreSQL backend (connection) this job ran on."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])
