"""Edits against jobs: whether objects are busy, and what to show when they are.

The mechanism is async_queue's object locks, shared with every other writer. A view
asks ``find_conflict()`` (single edits) or ``BulkMixin.get_bulk_conflicts()`` (bulk
edits) before it shows or processes a form, and writes inside
``transaction.atomic()`` + ``async_queue.hold()``, which raises ``Conflict`` when a job
started in between. Either way the user sees the blocking jobs, who started them, and
their live progress.

Both ask the same way: ``busy_jobs()`` (``async_queue.busy``, one query per thousand
keys), then, for a bulk edit, which job holds which object (``async_queue.holders``),
and ``blocking_jobs()`` for what to show of each job (``async_queue.snapshot`` for the
progress, ``async_queue.job_url`` for the link, under the dashboard's visibility rule).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from async_queue import Conflict, Job, Progress, busy, job_url, lock_keys, snapshot

from .selection import chunked

MAX_JOBS_SHOWN = 5


@dataclass(frozen=True)
class BlockingJob:
    """A queued or running job that declared objects an edit needs, as notices show it."""

    job: Job
    owner: str  # the username of who scheduled it; "" for the system
    progress: Progress
    url: str | None  # its dashboard page, when the user may see it

    @property
    def percent(self) -> float | None:
        return self.progress.percent


@dataclass(frozen=True)
class ConflictNotice:
    """What the conflict modal shows; ``refresh_url`` answers with a fresh notice."""

    keys: list[str]
    jobs: list[BlockingJob]
    message: str
    refresh_url: str
    more: int = 0


@dataclass
class BusyObject:
    """A selected object that queued or running jobs declared, with those jobs."""

    pk: str
    label: str
    jobs: list[BlockingJob] = field(default_factory=list)


def busy_jobs(targets: Iterable[Any], limit: int | None = None) -> list[Job]:
    """The queued or running jobs that declared any of ``targets``, in id order.

    One query per thousand keys (and only one when ``limit`` is reached in the first).
    """
    found: dict[int, Job] = {}
    for chunk in chunked(lock_keys(list(targets))):
        queryset = busy(*chunk).select_related("user")
        for job in queryset if limit is None else queryset[: limit - len(found)]:
            found[job.pk] = job
        if limit is not None and len(found) >= limit:
            break
    return sorted(found.values(), key=lambda job: job.pk)


def blocking_jobs(jobs: Iterable[Job], user: Any) -> list[BlockingJob]:
    """Each job with its owner, live progress and (if ``user`` may see it) its page."""
    jobs = list(jobs)
    progress = snapshot(jobs)
    return [
        BlockingJob(
            job=job,
            owner=job.user.get_username() if job.user is not None else "",
            progress=progress[job.pk],
            url=job_url(job, user),
        )
        for job in jobs
    ]


def find_conflict(targets: Iterable[Any]) -> Conflict | None:
    """A ``Conflict`` naming the queued or running jobs that declared any of ``targets``."""
    keys = lock_keys(list(targets))  # once: a queryset among them is read here
    jobs = busy_jobs(keys, limit=MAX_JOBS_SHOWN + 1)
    return Conflict(keys, jobs) if jobs else None


def jobs_message(jobs: list[Job]) -> str:
    """What the jobs do to the object: a queued job is not working on it yet."""
    working = any(job.is_running for job in jobs)
    if len(jobs) == 1:
        return f"A background job is {'working' if working else 'queued to work'} on this object."
    return f"Background jobs are {'working' if working else 'queued to work'} on this object."


def describe(conflict: Conflict, user: Any, refresh_url: str) -> ConflictNotice:
    """The notice for ``conflict``, with each job's owner and live progress."""
    shown = blocking_jobs(conflict.jobs[:MAX_JOBS_SHOWN], user)
    if shown:
        message = jobs_message(conflict.jobs)
    else:
        # No job holds it: another request's hold() of the same object (PostgreSQL).
        # A database too busy to write at all is not a conflict but a 503 (SQLite).
        message = "Another request is saving this object right now; try again in a moment."
    return ConflictNotice(
        keys=conflict.keys,
        jobs=shown,
        message=message,
        refresh_url=refresh_url,
        more=max(0, len(conflict.jobs) - MAX_JOBS_SHOWN),
    )


__all__ = [
    "BlockingJob",
    "BusyObject",
    "Conflict",
    "ConflictNotice",
    "blocking_jobs",
    "busy_jobs",
    "describe",
    "find_conflict",
]
