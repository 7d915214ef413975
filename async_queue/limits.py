"""Flow control: concurrency limits and rate limits, per job key and per queue.

**Concurrency.** ``@job(concurrency=3, concurrency_key="tenant:{tenant_id}")``:
at most 3 jobs with the same key run at once, across every worker on every
machine; ``ASYNC_QUEUE["QUEUES"] = {"emails": {"concurrency": 5}}`` does the
same for a whole queue. Two parts make it exact and cheap:

- the claim skips a job whose key (or queue) already has its limit of running
  jobs (a count through an index, in the claim's single statement);
- two workers can still both pass that count in the same instant, so the job's
  transaction then takes one of N *slots*: transaction-level advisory locks
  ``lock_id("concurrency:<key>#<i>")``, i < N (PostgreSQL). A job that finds
  every slot taken goes back to the queue, due at once and no attempt used; the
  count keeps it out of the next claims until a slot frees. Slots are released
  by the transaction's end however it ends (commit, rollback, a killed worker).

Object locks (``locks=``) are the N = 1 case of the same idea on *objects*
rather than on a job's key: an object lock conflicts with web edits too
(``hold()``), a concurrency slot only with other jobs of the key. On SQLite a
job's transaction holds the single write lock, so jobs run one at a time and any
limit of 1 or more holds by construction.

**Rates.** ``@job(rate="100/m", rate_key=...)`` or a queue's ``"rate"``: at
most N *starts* per period per key, in fixed windows aligned to the database
clock (``floor(epoch / period)``): every aligned window of the period holds at
most N starts (two adjacent windows may hold up to 2N within one period that
straddles them). The claim counts a start in a ``RateCount`` row in the same
statement that marks the job running, so the bound is exact across workers. A
job over the rate waits in the queue (not an attempt, not a failure); workers
wake at the next window's start. A job's own rate replaces its queue's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .conf import queue_settings
from .keys import lock_id

KEY_MAX_CHARS = 255
KeySpec = str | Callable[..., str] | None
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*(s|sec|m|min|h|hour|d|day)\s*$")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` starts per ``period`` seconds."""

    limit: int
    period: float

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"


def parse_rate(value: Any, error: type[Exception] = ValueError) -> Rate:
    """``"100/m"``, ``"5/s"``, ``"1000/h"``, ``"20/10s"`` (also a ``Rate``) as a ``Rate``."""
    if isinstance(value, Rate):
        return value
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise error(f"rate={value!r} is not a rate such as '100/m', '5/s', '1000/h' or '20/10s'.")
    limit, count, unit = int(match[1]), float(match[2] or 1), _UNITS[match[3]]
    period = count * unit
    if limit < 1 or not math.isfinite(period) or period <= 0:
        raise error(f"rate={value!r} must allow at least 1 start in a positive period.")
    return Rate(limit, period)


def check_key_spec(label: str, spec: Any, error: type[Exception] = TypeError) -> None:
    if spec is not None and not isinstance(spec, str) and not callable(spec):
        raise error(
            f"{label} must be a template such as 'tenant:{{tenant_id}}' or a function of the "
            f"job's arguments; got {spec!r}."
        )


def make_key(
    label: str,
    spec: KeySpec,
    default: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    error: type[Exception],
) -> str:
    """The key of one call: ``spec`` formatted with (or called with) the job's arguments."""
    if spec is None:
        key = default
    else:
        try:
            key = spec.format(*args, **kwargs) if isinstance(spec, str) else spec(*args, **kwargs)
        except (LookupError, AttributeError, ValueError, TypeError) as exc:
            raise error(f"{label} could not be made from the job's arguments: {exc!r}.") from exc
    if not isinstance(key, str) or not key or len(key) > KEY_MAX_CHARS:
        raise error(f"{label} must give a non-empty string of up to 255 characters; got {key!r}.")
    return key


@dataclass(frozen=True)
class Limits:
    """What ``@job`` declared about flow: a concurrency limit and a rate, each with a key."""

    concurrency: int | None = None
    concurrency_key: KeySpec = None
    rate: Rate | None = None
    rate_key: KeySpec = None

    @classmethod
    def given(
        cls,
        concurrency: int | None,
        concurrency_key: KeySpec,
        rate: str | Rate | None,
        rate_key: KeySpec,
    ) -> Limits:
        if concurrency is not None and (
            not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1
        ):
            raise TypeError(
                f"concurrency must be a whole number of at least 1; got {concurrency!r}."
            )
        check_key_spec("concurrency_key", concurrency_key)
        check_key_spec("rate_key", rate_key)
        if concurrency_key is not None and concurrency is None:
            raise TypeError("concurrency_key needs concurrency=N, the most that run at once.")
        if rate_key is not None and rate is None:
            raise TypeError("rate_key needs rate=..., such as '100/m'.")
        return cls(
            concurrency,
            concurrency_key,
            None if rate is None else parse_rate(rate, TypeError),
            rate_key,
        )

    def row_values(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], error: type[Exception]
    ) -> dict[str, Any]:
        """The Job fields these limits set for one call (keys default to the job's name)."""
        values: dict[str, Any] = {}
        if self.concurrency is not None:
            values["concurrency"] = self.concurrency
            values["concurrency_key"] = make_key(
                "concurrency_key", self.concurrency_key, name, args, kwargs, error
            )
        if self.rate is not None:
            values["rate_limit"] = self.rate.limit
            values["rate_period"] = self.rate.period
            values["rate_key"] = make_key("rate_key", self.rate_key, name, args, kwargs, error)
        return values


@dataclass(frozen=True)
class QueueLimit:
    """A queue's limits, from ``ASYNC_QUEUE["QUEUES"]``."""

    queue: str
    concurrency: int | None = None
    rate: Rate | None = None


def queue_limits() -> tuple[QueueLimit, ...]:
    """The configured queue limits (validated by ``checks``; bad entries are left out)."""
    configured = queue_settings.QUEUES
    limits = []
    if not isinstance(configured, Mapping):
        return ()
    for queue, options in sorted(configured.items()):
        if not isinstance(queue, str) or not isinstance(options, Mapping):
            continue
        concurrency = options.get("concurrency")
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            concurrency = None
        try:
            rate = None if options.get("rate") is None else parse_rate(options["rate"])
        except ValueError:
            rate = None
        if concurrency is not None or rate is not None:
            limits.append(QueueLimit(queue, concurrency, rate))
    return tuple(limits)


def queue_problems() -> list[str]:
    """What is wrong with ``ASYNC_QUEUE["QUEUES"]`` (for the system checks)."""
    configured = queue_settings.QUEUES
    if not isinstance(configured, Mapping):
        return ["QUEUES must be a dict of queue name to {'concurrency': N, 'rate': '100/m'}."]
    problems = []
    for queue, options in configured.items():
        if not isinstance(options, Mapping) or set(options) - {"concurrency", "rate"}:
            problems.append(f"QUEUES[{queue!r}] must be a dict with 'concurrency' and/or 'rate'.")
            continue
        concurrency = options.get("concurrency")
        if concurrency is not None and (
            not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1
        ):
            problems.append(f"QUEUES[{queue!r}]['concurrency'] must be a whole number >= 1.")
        if options.get("rate") is not None:
            try:
                parse_rate(options["rate"])
            except ValueError as exc:
                problems.append(f"QUEUES[{queue!r}]: {exc}")
    return problems


def slot_groups(
    concurrency_key: str | None, concurrency: int | None, queue: str, limits: Sequence[QueueLimit]
) -> list[list[int]]:
    """The advisory lock ids a job of this key and queue must take one of, per limit."""
    groups = []
    if concurrency_key is not None and concurrency:
        groups.append([lock_id(f"concurrency:{concurrency_key}#{i}") for i in range(concurrency)])
    for limit in limits:
        if limit.queue == queue and limit.concurrency:
            groups.append([lock_id(f"queue:{queue}#{i}") for i in range(limit.concurrency)])
    return groups


def next_window(periods: set[float], now: float) -> float | None:
    """Seconds from ``now`` (epoch) until the next start of a window of any of ``periods``."""
    if not periods:
        return None
    return min(period - (now % period) for period in periods)
