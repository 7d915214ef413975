"""The job's states and what happens to it, as names the rest of the package shares.

A job moves ``queued -> running -> succeeded | failed | cancelled``; a failed
attempt that has attempts left goes back to ``queued`` with a later
``run_after`` (``Result.RETRYING``), and a job whose object locks are busy goes
back without using an attempt (``Result.DEFERRED``). Every transition is a
fenced UPDATE on the model (``Job``'s methods), so two processes can never both
perform the same one. ``Event`` names the lifecycle signals (``signals``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


@dataclass(frozen=True)
class Progress:
    """A job's progress as last reported."""

    current: int | None = None
    total: int | None = None
    message: str = ""
    updated_at: datetime | None = None
    cancel_requested: bool = False

    @property
    def percent(self) -> float | None:
        if self.current is None or not self.total:
            return None
        return max(0.0, min(100.0, 100.0 * self.current / self.total))

    def as_dict(self) -> dict[str, Any]:
        return {"current": self.current, "total": self.total, "message": self.message}


class Result(enum.StrEnum):
    """What became of one attempt (``Outcome.status``)."""

    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # failed, queued again with backoff
    FAILED = "failed"  # failed, no attempt left (or not worth retrying)
    CANCELLED = "cancelled"  # cancellation requested and noticed: rolled back
    DEFERRED = "deferred"  # its object locks were busy: queued again, attempt not used
    SNOOZED = "snoozed"  # the job raised Snooze: queued again later, attempt not used
    ABORTED = "aborted"  # the worker was stopped: rolled back, queued again at once
    FENCED = "fenced"  # the claim was lost meanwhile: nothing of it was recorded


class Event(enum.StrEnum):
    """The lifecycle signals, in the order an attempt sends them (see ``signals``)."""

    SCHEDULED = "scheduled"
    STARTED = "started"
    PROGRESS = "progress"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CLEANUP = "cleanup"


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt."""

    job_id: int
    name: str
    status: Result
    duration: float
    error: str = ""
    retry_in: float | None = None

    def __str__(self) -> str:
        line = f"job {self.job_id} {self.name} {self.status} after {self.duration:.3f}s"
        if self.error:
            line += f": {self.error}"
        if self.retry_in is not None:
            line += f" (next try in {self.retry_in:.1f}s)"
        return line
