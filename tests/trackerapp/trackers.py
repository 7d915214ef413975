"""Tracker subclasses the tests select with ``ASYNC_QUEUE["TRACKER"]["CLASS"]``."""

from typing import Any

from async_queue.tracking import Tracker


class CustomTracker(Tracker):
    """Overrides every format_* hook."""

    def format_status(self, status: str) -> Any:
        return status.upper()

    def format_progress(self, progress: Any) -> Any:
        return progress["current"]

    def format_user(self, job: Any) -> Any:
        return f"user #{job.user_id}"

    def format_objects(self, job: Any, keys: list[str]) -> Any:
        return {"count": len(keys), "first": keys[0] if keys else None}

    def format_payload(self, event: str, payload: Any) -> Any:
        return {"event": event, "attempt": payload["attempt"]}


class ExplodingTracker(Tracker):
    """A hook that raises."""

    def format_status(self, status: str) -> Any:
        raise RuntimeError("the status hook exploded")


class NegativeProgressTracker(Tracker):
    """Writes a value the database refuses (a positive field's CHECK constraint)."""

    def format_progress(self, progress: Any) -> Any:
        return -5


class QuickTimeoutTracker(Tracker):
    """Gives up on a locked record after 0.2 seconds."""

    side_lock_timeout = 0.2


class CountingTracker(Tracker):
    """Counts the events it handles."""

    handled: list[str] = []

    def handle(self, event: str, job: Any, payload: Any) -> None:
        self.handled.append(event)
        super().handle(event, job, payload)


class NotATracker:
    pass
