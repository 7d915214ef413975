"""async_queue: a transactional, database-backed job queue for Django.

    from async_queue import schedule
    schedule("myapp.tasks.reprice", args=[book.pk])

Names are imported lazily, so importing this package never imports models.

This module is the public API, for projects and for apps built on the queue (powercrud
imports nothing else from it but ``models`` and ``exceptions``): scheduling, progress
and cancellation, pausing queues and job names (``pause_queue``, ``pause_job``), object
locks (``hold``, ``busy``, ``holders``), who may see a job (``visible_jobs``,
``can_see``, ``job_url``), safe display of stored text (``show_line``, ``show_text``)
and the htmx helpers both apps' views share.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .callables import job
    from .display import show_line, show_text
    from .exceptions import (
        Conflict,
        Discard,
        Fail,
        InvalidJobState,
        JobCancelled,
        JobNotAllowed,
        JobTimeout,
        Retry,
        ScheduleError,
        Snooze,
        WorkerAborted,
    )
    from .htmx import htmx_details, hx_trigger, wants_fragment
    from .locks import LockTarget, busy, hold, holders, lock_key, lock_keys
    from .models import Job, JobError, JobGroup, JobLock, Pause, Status
    from .pausing import pause_job, pause_queue, paused, resume_job, resume_queue
    from .permissions import can_see, job_url, visible_jobs
    from .policy import backoff
    from .progress import (
        Progress,
        asnapshot,
        cancel,
        check_cancelled,
        current_job,
        report_progress,
        snapshot,
    )
    from .retries import Exponential
    from .scheduling import aschedule, deschedule, schedule, schedule_many, tracker_name

__all__ = [
    "Conflict",
    "Discard",
    "Exponential",
    "Fail",
    "InvalidJobState",
    "Job",
    "JobCancelled",
    "JobError",
    "JobGroup",
    "JobLock",
    "JobNotAllowed",
    "JobTimeout",
    "LockTarget",
    "Pause",
    "Progress",
    "Retry",
    "ScheduleError",
    "Snooze",
    "Status",
    "WorkerAborted",
    "aschedule",
    "asnapshot",
    "backoff",
    "busy",
    "can_see",
    "cancel",
    "check_cancelled",
    "current_job",
    "deschedule",
    "hold",
    "holders",
    "htmx_details",
    "hx_trigger",
    "job",
    "job_url",
    "lock_key",
    "lock_keys",
    "pause_job",
    "pause_queue",
    "paused",
    "report_progress",
    "resume_job",
    "resume_queue",
    "schedule",
    "schedule_many",
    "show_line",
    "show_text",
    "snapshot",
    "tracker_name",
    "visible_jobs",
    "wants_fragment",
]

_EXPORTS = {
    "tracker_name": "scheduling",
    "show_line": "display",
    "show_text": "display",
    "htmx_details": "htmx",
    "hx_trigger": "htmx",
    "wants_fragment": "htmx",
    "LockTarget": "locks",
    "busy": "locks",
    "hold": "locks",
    "holders": "locks",
    "lock_key": "locks",
    "lock_keys": "locks",
    "can_see": "permissions",
    "job_url": "permissions",
    "visible_jobs": "permissions",
    "Progress": "progress",
    "asnapshot": "progress",
    "snapshot": "progress",
    "job": "callables",
    "backoff": "policy",
    "Exponential": "retries",
    "Retry": "exceptions",
    "Snooze": "exceptions",
    "Fail": "exceptions",
    "Discard": "exceptions",
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
    "Pause": "models",
    "pause_queue": "pausing",
    "resume_queue": "pausing",
    "pause_job": "pausing",
    "resume_job": "pausing",
    "paused": "pausing",
}


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'async_queue' has no attribute {name!r}") from None
    return getattr(import_module(f".{module}", __name__), name)
