"""Everything that differs between the databases the queue runs on.

``dialect(using)`` is the database alias's ``Dialect`` (``postgresql`` or
``sqlite``), chosen once per alias; nothing outside this package asks which
database it talks to. A third database would be one more module here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.models import Lookup, Q

from .base import Dialect, LivenessLock, ProgressStore, Waiter, second_connection, seconds_ago
from .postgresql import CHANNEL, PostgreSQL
from .sqlite import SQLite, is_database_busy

DIALECTS: dict[str, type[Dialect]] = {"postgresql": PostgreSQL, "sqlite": SQLite}
_chosen: dict[tuple[str, str], Dialect] = {}


def dialect(using: str) -> Dialect:
    """The ``Dialect`` of database alias ``using``; refuses a database the queue cannot use."""
    vendor = connections[using].vendor
    try:
        return _chosen[using, vendor]
    except KeyError:
        pass
    try:
        cls = DIALECTS[vendor]
    except KeyError:
        raise ImproperlyConfigured(
            f"async_queue supports PostgreSQL and SQLite, not {vendor} (database {using!r})."
        ) from None
    chosen = _chosen[using, vendor] = cls(using)
    return chosen


def hinted(using: str, few: bool | None, **lookup: Any) -> Q | Lookup:
    """The filter ``field[__lookup]=value``, with what the caller knows of how many match
    as a planner hint where the database needs one (``SQLite.hinted``)."""
    return dialect(using).hinted(few, **lookup)


def database_now(using: str) -> datetime:
    """The database clock's current time (aware), which all job timestamps use."""
    return dialect(using).database_now()


__all__ = [
    "CHANNEL",
    "Dialect",
    "LivenessLock",
    "ProgressStore",
    "Waiter",
    "database_now",
    "dialect",
    "hinted",
    "is_database_busy",
    "second_connection",
    "seconds_ago",
]
