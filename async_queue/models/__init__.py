"""The queue's rows: ``Job`` (the queue, the progress record and the dashboard record in
one) in ``job``; the rows around it in ``records``; the workers in ``workers``; paused
queues and job names in ``pauses``."""

from ..states import FINISHED, Progress, Status
from .flow import RateCount
from .job import EXECUTOR, Job, JobQuerySet
from .pauses import Pause, PauseKind
from .records import JobError, JobGroup, JobLock, PeriodicTick, UniqueWindow
from .schedules import Schedule, ScheduleSource
from .workers import Worker, WorkerMode

__all__ = [
    "EXECUTOR",
    "FINISHED",
    "Job",
    "JobError",
    "JobGroup",
    "JobLock",
    "JobQuerySet",
    "Pause",
    "PauseKind",
    "PeriodicTick",
    "Progress",
    "RateCount",
    "Schedule",
    "ScheduleSource",
    "Status",
    "UniqueWindow",
    "Worker",
    "WorkerMode",
]
