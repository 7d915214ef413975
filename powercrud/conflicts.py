"""Single edits against jobs: whether an object is busy, and what to show when it is.

The mechanism is ``async_queue.locks``, shared with every other writer: a view asks
``find_conflict()`` (``locks.busy``) before it shows or processes a form, and writes
inside ``transaction.atomic()`` + ``locks.hold()``, which raises ``Conflict`` when a
job started in between. Either way the user sees a ``ConflictNotice``: the blocking
jobs, who started them, and their live progress (``async_queue.progress.snapshot``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.urls import NoReverseMatch, reverse

from async_queue import locks
from async_queue.exceptions import Conflict

if TYPE_CHECKING:
    from async_queue.models import Job
    from async_queue.progress import Progress

MAX_JOBS_SHOWN = 5


@dataclass(frozen=True)
class BlockingJob:
    """One job a conflict names, as the conflict notice shows it."""

    job: Job
    owner: str
    progress: Progress
    url: str | None

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


def find_conflict(targets: Iterable[Any]) -> Conflict | None:
    """A ``Conflict`` naming the queued or running jobs that declared any of ``targets``."""
    keys = locks.lock_keys(list(targets))
    jobs = list(locks.busy(*keys).select_related("user")[: MAX_JOBS_SHOWN + 1])
    return Conflict(keys, jobs) if jobs else None


def job_url(job: Job, user: Any) -> str | None:
    """The job's dashboard page, if the dashboard is routed and ``user`` may see the job."""
    from async_queue.permissions import sees_all_jobs

    if not (sees_all_jobs(user) or (job.user_id is not None and job.user_id == user.pk)):
        return None
    try:
        return reverse("async_queue:job-detail", args=[job.pk])
    except NoReverseMatch:
        return None


def describe(conflict: Conflict, user: Any, refresh_url: str) -> ConflictNotice:
    """The notice for ``conflict``, with each job's owner and live progress."""
    from async_queue.progress import snapshot

    jobs = list(conflict.jobs[:MAX_JOBS_SHOWN])
    progress = snapshot(jobs)
    shown = [
        BlockingJob(
            job=job,
            owner=job.user.get_username() if job.user_id else "",
            progress=progress[job.pk],
            url=job_url(job, user),
        )
        for job in jobs
    ]
    if shown:
        message = "A background job is working on this object."
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


__all__ = ["BlockingJob", "Conflict", "ConflictNotice", "describe", "find_conflict"]
