"""A job's failure policy: which failures retry, after how long, and which fail at once.

The rules come from the job's declaration (``@job(retry_on=..., discard_on=...,
backoff=...)``), overridden per job by ``schedule()`` (stored in ``Job.policy``),
and from the settings for anything neither gives. ``decide()`` applies them to
one failed attempt, in this order:

1. the worker was stopped: queued again at once (``aborted``);
2. the job could never run (undeclared, unreadable arguments): failed;
3. the attempt was lost to the infrastructure (worker or connection): retried at
   once until the job has made ``MAX_LOST_ATTEMPTS`` attempts; the rules do not
   apply, the job did nothing wrong;
4. the job raised ``Snooze``: queued again later, no attempt used (failed after
   ``MAX_SNOOZES``); ``Fail``/``Discard``: failed; ``Retry``: retried (``in_``
   seconds, or by its backoff) while attempts are left;
5. an exception in ``discard_on``, or one not in ``retry_on`` when that is given:
   failed; else retried by the backoff while attempts are left.

Exception classes are kept by their dotted paths and matched along the raised
exception's class hierarchy (a subclass matches), so a row's rules import nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .conf import queue_settings
from .exceptions import Discard, Fail, Retry, Snooze
from .retries import Exponential
from .states import Result

BACKOFF_ATTRIBUTE = "async_queue_backoff"
BackoffFunction = Callable[[int, BaseException], float]
ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...] | None
# The longest delay a backoff may ask for; more is taken as this (no datetime overflow).
MAX_DELAY = 366 * 24 * 3600.0


def backoff(function: BackoffFunction) -> BackoffFunction:
    """Declare a module-level ``(attempt, exception) -> seconds`` function that
    ``schedule(backoff=...)`` may name in a job row (a row runs only declared code)."""
    if not callable(function):
        raise TypeError(f"@backoff decorates a function, not {function!r}.")
    setattr(function, BACKOFF_ATTRIBUTE, True)
    return function


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def short_path(path: str) -> str:
    return path.removeprefix("builtins.")


def exception_paths(label: str, value: Any, error: type[Exception]) -> tuple[str, ...] | None:
    """The dotted paths of ``value``'s exception classes (one class or an iterable of them)."""
    if value is None:
        return None
    classes = [value] if isinstance(value, type) else value
    if not isinstance(classes, Iterable) or isinstance(classes, str | bytes):
        raise error(f"{label} must be an exception class or a tuple of them; got {value!r}.")
    paths = []
    for cls in classes:
        if not isinstance(cls, type) or not issubclass(cls, BaseException):
            raise error(f"{label} must hold exception classes; got {cls!r}.")
        paths.append(class_path(cls))
    return tuple(paths)


def matches(exc: BaseException, paths: tuple[str, ...]) -> str | None:
    """The first of ``paths`` that ``exc`` is an instance of (by class hierarchy), or None."""
    hierarchy = {class_path(cls) for cls in type(exc).__mro__}
    return next((path for path in paths if path in hierarchy), None)


@dataclass(frozen=True)
class Rules:
    """A failure policy as given: by a declaration, a ``schedule()`` call, or both merged.

    ``backoff`` is an ``Exponential``, a function, or (read from a row) the dotted
    name of a declared backoff function, resolved by ``callables.job_rules``.
    """

    retry_on: tuple[str, ...] | None = None
    discard_on: tuple[str, ...] | None = None
    backoff: Exponential | BackoffFunction | str | None = None

    @classmethod
    def given(
        cls,
        retry_on: Any = None,
        discard_on: Any = None,
        backoff: Exponential | BackoffFunction | str | None = None,
        *,
        error: type[Exception] = TypeError,
    ) -> Rules:
        """Validated rules; ``error`` (TypeError, or ScheduleError) names a bad value."""
        if backoff is not None and not (
            isinstance(backoff, Exponential | str) or callable(backoff)
        ):
            raise error(
                f"backoff must be an async_queue.Exponential(...) or a function "
                f"(attempt, exception) -> seconds; got {backoff!r}."
            )
        return cls(
            exception_paths("retry_on", retry_on, error),
            exception_paths("discard_on", discard_on, error),
            backoff,
        )

    def over(self, base: Rules) -> Rules:
        """These rules, with ``base``'s for those these leave unset."""
        return Rules(
            base.retry_on if self.retry_on is None else self.retry_on,
            base.discard_on if self.discard_on is None else self.discard_on,
            base.backoff if self.backoff is None else self.backoff,
        )

    def as_data(self) -> dict[str, Any] | None:
        """The JSON a job row stores (None when there is nothing to store)."""
        data: dict[str, Any] = {}
        if self.retry_on is not None:
            data["retry_on"] = list(self.retry_on)
        if self.discard_on is not None:
            data["discard_on"] = list(self.discard_on)
        if isinstance(self.backoff, Exponential):
            data["backoff"] = {"exponential": self.backoff.as_data()}
        elif isinstance(self.backoff, str):
            data["backoff"] = {"function": self.backoff}
        elif self.backoff is not None:
            raise TypeError("A backoff function is stored by its dotted name; resolve it first.")
        return data or None

    @classmethod
    def from_data(cls, data: Any) -> Rules:
        """The rules a row stores; anything unreadable (a forged row) is left out."""
        if not isinstance(data, dict):
            return cls()

        def paths(key: str) -> tuple[str, ...] | None:
            value = data.get(key)
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                return tuple(value)
            return None

        backoff: Exponential | str | None = None
        stored = data.get("backoff")
        if isinstance(stored, dict) and isinstance(stored.get("function"), str):
            backoff = stored["function"]
        elif isinstance(stored, dict) and isinstance(stored.get("exponential"), dict):
            try:
                backoff = Exponential(**stored["exponential"])
            except (TypeError, ValueError):
                backoff = None
        return cls(paths("retry_on"), paths("discard_on"), backoff)

    def describe(self) -> list[tuple[str, str]]:
        """(label, value) lines for a page."""
        return [
            ("Retry on", ", ".join(map(short_path, self.retry_on)) if self.retry_on else "any"),
            ("Discard on", ", ".join(map(short_path, self.discard_on or ())) or "—"),
            ("Backoff", backoff_label(self.backoff)),
        ]


def backoff_label(backoff: Exponential | BackoffFunction | str | None) -> str:
    if backoff is None:
        return str(Exponential())
    if isinstance(backoff, Exponential):
        return str(backoff)
    if isinstance(backoff, str):
        return f"{backoff} (not a declared backoff function: the default is used)"
    return f"{getattr(backoff, '__module__', '?')}.{getattr(backoff, '__qualname__', backoff)}"


@dataclass(frozen=True)
class Decision:
    """What becomes of a failed attempt, and why (``JobError.decision``)."""

    status: Result  # RETRYING, FAILED, ABORTED or SNOOZED
    retry_in: float | None
    reason: str


def delay(rules: Rules, attempt: int, exc: BaseException) -> tuple[float, str]:
    """The backoff's delay after ``attempt`` failed with ``exc``, and a note if it fell back."""
    backoff = rules.backoff
    if backoff is None or isinstance(backoff, Exponential):
        return (backoff or Exponential()).delay(attempt), ""
    if isinstance(backoff, str):
        return Exponential().delay(attempt), f"; {backoff} is not a declared backoff function"
    try:
        seconds = backoff(attempt, exc)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"it returned {seconds!r}, not a number of seconds")
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"it returned {seconds!r}")
    except Exception as problem:
        note = f"; the backoff function failed ({problem}), so the default backoff was used"
        return Exponential().delay(attempt), note
    return min(float(seconds), MAX_DELAY), ""


def decide(
    exc: BaseException,
    rules: Rules,
    *,
    attempt: int,
    max_attempts: int,
    snoozes: int,
    lost: bool = False,
    final: bool = False,
    aborted: bool = False,
) -> Decision:
    """Apply the policy to attempt ``attempt`` (1-based) that failed with ``exc``."""
    last = f"attempt {attempt} of {max_attempts}"
    if aborted:
        return Decision(Result.ABORTED, 0.0, "the worker was stopped: queued again at once")
    if final:
        return Decision(Result.FAILED, None, "not retried: the job cannot run as stored")
    if lost:
        limit = max(max_attempts, queue_settings.MAX_LOST_ATTEMPTS)
        if attempt >= limit:
            return Decision(Result.FAILED, None, f"lost {last}; MAX_LOST_ATTEMPTS reached")
        return Decision(Result.RETRYING, 0.0, "lost to the infrastructure: retried at once")
    if isinstance(exc, Snooze):
        if snoozes >= queue_settings.MAX_SNOOZES:
            return Decision(
                Result.FAILED, None, f"snoozed {snoozes} times, the most MAX_SNOOZES allows"
            )
        return Decision(Result.SNOOZED, exc.seconds, f"snoozed for {exc.seconds:g}s")
    if isinstance(exc, Fail):
        verb = "discarded" if isinstance(exc, Discard) else "failed"
        return Decision(
            Result.FAILED, None, f"{verb} by the job{': ' if exc.reason else ''}{exc.reason}"
        )
    if not isinstance(exc, Retry):
        if rules.discard_on and (path := matches(exc, rules.discard_on)):
            return Decision(
                Result.FAILED, None, f"not retried: {short_path(path)} is in discard_on"
            )
        if rules.retry_on is not None and not matches(exc, rules.retry_on):
            return Decision(Result.FAILED, None, "not retried: not in retry_on")
    if attempt >= max_attempts:
        return Decision(Result.FAILED, None, f"{last} failed: no attempt left")
    if isinstance(exc, Retry) and exc.in_ is not None:
        seconds, note = min(exc.in_, MAX_DELAY), ""
    else:
        seconds, note = delay(rules, attempt, exc)
    asked = "Retry raised: " if isinstance(exc, Retry) else ""
    return Decision(
        Result.RETRYING, seconds, f"{asked}{last} failed, retried in {seconds:.1f}s{note}"
    )
