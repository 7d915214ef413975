"""async_queue: a transactional, database-backed job queue for Django.

    from async_queue import schedule
    schedule("myapp.tasks.reprice", args=[book.pk])

Names are imported lazily, so importing this package never imports models.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .exceptions import InvalidJobState, JobNotAllowed, ScheduleError
    from .models import Job, JobError, Status
    from .scheduling import deschedule, schedule

__all__ = [
    "InvalidJobState",
    "Job",
    "JobError",
    "JobNotAllowed",
    "ScheduleError",
    "Status",
    "deschedule",
    "schedule",
]

_EXPORTS = {
    "schedule": "scheduling",
    "deschedule": "scheduling",
    "Job": "models",
    "JobError": "models",
    "Status": "models",
    "ScheduleError": "exceptions",
    "JobNotAllowed": "exceptions",
    "InvalidJobState": "exceptions",
}


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'async_queue' has no attribute {name!r}") from None
    return getattr(import_module(f".{module}", __name__), name)
