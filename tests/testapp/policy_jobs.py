"""Jobs with failure policies, and the backoff functions they use."""

from __future__ import annotations

from async_queue import Discard, Exponential, Fail, Retry, Snooze, backoff, job

from .tasks import increment

BACKOFF_CALLS: list[tuple[int, str]] = []  # what ``recorded`` was called with, in-process


class Transient(ConnectionError):
    """A failure worth retrying."""


class Permanent(ValueError):
    """A failure that retrying cannot fix."""


KINDS: dict[str, type[Exception]] = {
    "transient": Transient,
    "permanent": Permanent,
    "value": ValueError,
    "runtime": RuntimeError,
}


@backoff
def linear(attempt: int, exc: BaseException) -> float:
    return 10.0 * attempt


def recorded(attempt: int, exc: BaseException) -> float:
    BACKOFF_CALLS.append((attempt, type(exc).__name__))
    return 7.0


def undeclared_backoff(attempt: int, exc: BaseException) -> float:
    """Module-level but never declared: a row may not name it."""
    return 1.0


def echoed(attempt: int, exc: BaseException) -> float:
    """Returns what the job put in its exception, whatever it is (a bad backoff, on purpose)."""
    return exc.args[0]  # type: ignore[no-any-return]


def broken(attempt: int, exc: BaseException) -> float:
    raise ZeroDivisionError("the backoff itself failed")


def _raise(kind: str, name: str) -> None:
    increment(name)  # rolled back with the attempt
    raise KINDS[kind](f"{kind} failure")


@job(retry_on=Transient, max_attempts=3)
def retry_transient(kind: str, name: str = "policy") -> None:
    _raise(kind, name)


@job(discard_on=(Permanent,), max_attempts=3)
def discard_permanent(kind: str, name: str = "policy") -> None:
    _raise(kind, name)


@job(max_attempts=3)
def plain(kind: str, name: str = "policy") -> None:
    _raise(kind, name)


@job(backoff=Exponential(base=10, factor=3, max=50, jitter=0), max_attempts=5)
def exponential(kind: str = "value", name: str = "policy") -> None:
    _raise(kind, name)


@job(backoff=recorded, max_attempts=3)
def recorded_backoff(kind: str = "value", name: str = "policy") -> None:
    _raise(kind, name)


@job(backoff=echoed, max_attempts=100)
def echo_backoff(value: object) -> None:
    raise ValueError(value)


@job(backoff=broken, max_attempts=3)
def broken_backoff() -> None:
    raise ValueError("boom")


@job(max_attempts=2)
def steer(action: str, seconds: float | None = None, name: str = "steer") -> None:
    """Raise the exception ``action`` names, after a write that rolls back with it."""
    increment(name)
    if action == "retry":
        raise Retry(in_=seconds, reason="the remote said later")
    if action == "snooze":
        raise Snooze(seconds or 0, reason="not yet")
    if action == "fail":
        raise Fail("the input is wrong")
    if action == "discard":
        raise Discard()


@job(retry_on=Transient, discard_on=ValueError, max_attempts=3)
def retry_despite_rules() -> None:
    """Retry bypasses retry_on and discard_on: the job asked for it."""
    raise Retry(in_=5)
