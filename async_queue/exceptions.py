"""Exceptions raised by async_queue; each names the bad value and the fix."""

from __future__ import annotations


class ScheduleError(ValueError):
    """A job cannot be scheduled as asked: bad function, arguments or options."""


class JobNotAllowed(ScheduleError):
    """The dotted name is outside ``ASYNC_QUEUE["ALLOWED_MODULES"]``."""


class InvalidJobState(ValueError):
    """A transition was asked of a job in a status that does not allow it."""


class CompletionFenced(RuntimeError):
    """The job's claim was lost before it could be completed; its transaction rolls back."""
