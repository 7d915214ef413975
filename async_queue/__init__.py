"""async_queue: a transactional, database-backed job queue for Django.

    from async_queue import schedule
    schedule("myapp.tasks.reprice", args=[book.pk])

Names are imported lazily, so importing this package never imports models.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .callables import job
    from .exceptions import (
        Conflict,
        InvalidJobState,
        JobCancelled,
        JobNotAllowed,
        JobTimeout,
        ScheduleError,
        WorkerAborted,
    )
    from .models import Job, JobError, JobGroup, JobLock, Status
    from .progress import cancel, check_cancelled, current_job, report_progress
    from .scheduling import aschedule, deschedule, schedule, schedule_many

__all__ = [
    "Conflict",
    "InvalidJobState",
    "Job",
    "JobCancelled",
    "JobError",
    "JobGroup",
    "JobLock",
    "JobNotAllowed",
    "JobTimeout",
    "ScheduleError",
    "Status",
    "WorkerAborted",
    "aschedule",
    "cancel",
    "check_cancelled",
    "current_job",
    "deschedule",
    "job",
    "report_progress",
    "schedule",
    "schedule_many",
]

_EXPORTS = {
    "job": "callables",
    "schedule": "scheduling",
    "deschedule": "scheduling",
    "schedule_many": "scheduling",
    "aschedule": "scheduling",
    "report_progress": "progress",
    "current_job": "progress",
    "check_cancelled": "progress",
    "cancel": "progress",
    "JobCancelled": "exceptions",
    "JobGroup": "models",
    "JobLock": "models",
    "Conflict": "exceptions",
    "JobTimeout": "exceptions",
    "WorkerAborted": "exceptions",
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
