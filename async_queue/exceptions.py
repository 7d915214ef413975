"""Exceptions raised by async_queue; each names the bad value and the fix."""

from __future__ import annotations


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
