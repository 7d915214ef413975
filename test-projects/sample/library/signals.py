"""Signal receivers of the library app."""

from __future__ import annotations

from typing import Any

from django.db import connections


def enable_sqlite_wal(using: str = "default", **kwargs: Any) -> None:
    """Put a SQLite database in WAL mode after ``migrate``, so pages read while a job writes.

    WAL is a property of the database file, so setting it once is enough; doing it in
    ``OPTIONS["init_command"]`` instead would run on every connection and block while
    another connection writes.
    """
    connection = connections[using]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
