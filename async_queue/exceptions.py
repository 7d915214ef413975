"""Exceptions raised by async_queue; each names the bad value and the fix."""

from __future__ import annotations

import math
from datetime import timedelta


class ScheduleError(ValueError):
    """A job cannot be scheduled as asked: bad function, arguments or options."""


class JobNotAllowed(ScheduleError):
    """The dotted name is not a declared job (``@async_queue.job`` or ``ASYNC_QUEUE["JOBS"]``)."""


class InvalidJobState(ValueError):
    """A transition was asked of a job in a status that does not allow it."""


class UnreadableArguments(ValueError):
    """A job row's args or kwargs cannot be passed to its function.

    They do not decode (``fields.UnreadableJSON``), or are not a list and an object.
    Such a row was not written by ``schedule()`` (it was forged, or written by an
    older version): the job fails at once, calling nothing.
    """


class ResultTooLarge(ValueError):
    """A job returned more JSON than ``ASYNC_QUEUE["MAX_RESULT_BYTES"]``; the attempt fails."""


class CompletionFenced(RuntimeError):
    """The job's claim was lost before it could be completed; its transaction rolls back."""


class Conflict(Exception):
    """Objects are busy: a running job holds them, or a queued job declared them.

    ``jobs`` are the blocking jobs (empty when the holder is not a job, such as
    another web request's ``hold()``); ``keys`` are the keys that were asked for.
    """

    def __init__(self, keys: list[str], jobs: list, message: str | None = None) -> None:
        self.keys = keys
        self.jobs = jobs
        if message is None:
            if jobs:
                names = ", ".join(f"job {job.pk} ({job.name}, {job.status})" for job in jobs)
                message = (
                    f"{', '.join(keys[:5])} {'is' if len(keys) == 1 else 'are'} busy: {names}."
                )
            else:
                message = f"{', '.join(keys[:5])} is locked by another transaction."
        super().__init__(message)


class JobTimeout(KeyboardInterrupt):
    """Raised into a job that ran past its timeout.

    A ``KeyboardInterrupt``: a job's own ``except Exception`` cannot swallow it, and
    psycopg cancels a running query server-side when one interrupts it.
    """


class WorkerAborted(KeyboardInterrupt):
    """Raised into a running job when its worker must stop at once (a second signal)."""


class JobCancelled(BaseException):
    """Raised inside a job whose cancellation was requested; its writes roll back.

    A ``BaseException`` so that a job's own ``except Exception`` cannot swallow it.
    """


def _seconds(label: str, value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{label} must be a number of seconds of at least 0 or a timedelta.")
    return float(value)


class Retry(Exception):
    """Raised by a job: retry it ``in_`` seconds from now (or after its backoff).

    It uses an attempt: after the last one the job fails. ``retry_on`` and
    ``discard_on`` do not apply; the job asked for this. Its writes roll back.
    """

    def __init__(self, in_: float | timedelta | None = None, reason: str = "") -> None:
        self.in_ = _seconds("Retry(in_=...)", in_)
        self.reason = reason
        super().__init__(reason or "retry requested")


class Snooze(Exception):
    """Raised by a job: run it again ``seconds`` from now without using an attempt.

    A job may snooze at most ``ASYNC_QUEUE["MAX_SNOOZES"]`` times (then it fails),
    so that one that always snoozes still ends. Its writes roll back.
    """

    def __init__(self, seconds: float | timedelta, reason: str = "") -> None:
        self.seconds = _seconds("Snooze(seconds)", seconds) or 0.0
        self.reason = reason
        super().__init__(reason or f"snoozed for {self.seconds:g}s")


class Fail(Exception):
    """Raised by a job: fail it now, whatever attempts it has left. Its writes roll back."""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(reason or "failed by the job")


class Discard(Fail):
    """Raised by a job: discard it (fail now, no retry); ``Fail`` by another name."""
