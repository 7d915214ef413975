"""Cron in a time zone: which instants a schedule's ticks fall on, through DST changes.

A cron expression is matched against the wall clock of its zone (an IANA key such as
``"Europe/Berlin"``, read with ``zoneinfo``), and every local time it matches is one
tick, at one instant:

- a local time that does not exist, skipped by a spring-forward gap, runs once, at
  the first instant after the gap (``30 2 * * *`` in Berlin on the last Sunday of
  March runs at 03:00 CEST);
- a local time that exists twice, repeated by a fall-back fold, runs once, at its
  first occurrence (``fold=0``; ``30 2 * * *`` on the last Sunday of October runs at
  02:30 CEST, not again at 02:30 CET, and ``0 * * * *`` has no 02:00 CET run);
- several local times that land on the same instant run once (``*/15 * * * *``
  in a skipped hour: one tick at the end of the gap, which is also 03:00's).

This is the wall-clock reading of cron, the same for every expression (Debian's
cron treats expressions with a wildcard hour by elapsed time instead). A schedule
that must tick at even intervals through the fold belongs in UTC.

The instants are UTC; they depend only on the expression, the zone and the moment
asked about, so every worker computes the same ones.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

from .exceptions import ScheduleError

ONE_SECOND = timedelta(seconds=1)
ONE_MICROSECOND = timedelta(microseconds=1)


# Files of the zone directories that name no zone, or one that differs between hosts.
NOT_ZONES = frozenset({"localtime", "posixrules"})


@functools.cache
def zone_names() -> frozenset[str]:
    """The IANA keys this system's time zone database knows (read once per process)."""
    return (frozenset(zoneinfo.available_timezones()) - NOT_ZONES) | {"UTC"}


def zone(key: str) -> zoneinfo.ZoneInfo:
    """The time zone ``key`` names; ``ScheduleError`` if it names none."""
    # Only the database's keys: ZoneInfo() would also open any file under the zone
    # directories ("posixrules", "localtime") or raise a bare ValueError.
    if not isinstance(key, str) or key not in zone_names():
        raise ScheduleError(
            f"{key!r} is not a time zone; use an IANA name such as 'UTC', 'Europe/Berlin' "
            "or 'America/New_York'."
        )
    return zoneinfo.ZoneInfo(key)


def check(expression: str) -> None:
    """``ScheduleError`` naming the problem if ``expression`` is not a cron expression."""
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError(
            "A cron expression is needed, such as '0 3 * * *' (minute hour day month "
            "weekday; a sixth field in front counts seconds)."
        )
    try:
        CronSim(expression, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ScheduleError(f"Bad cron expression {expression!r}: {exc}") from None


def _offset(instant: datetime, where: zoneinfo.ZoneInfo) -> timedelta | None:
    return instant.astimezone(where).utcoffset()


def _change(where: zoneinfo.ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The first instant in ``(low, high]`` with ``high``'s UTC offset: the transition."""
    target = _offset(high, where)
    low_s, high_s = int(low.timestamp()), int(high.timestamp())
    while high_s - low_s > 1:  # zone transitions fall on whole seconds
        middle = (low_s + high_s) // 2
        if _offset(datetime.fromtimestamp(middle, UTC), where) == target:
            high_s = middle
        else:
            low_s = middle
    return datetime.fromtimestamp(high_s, UTC)


def instant(local: datetime, where: zoneinfo.ZoneInfo) -> datetime:
    """The UTC instant of the naive wall-clock time ``local`` in ``where`` (module rules)."""
    first = local.replace(tzinfo=where, fold=0).astimezone(UTC)
    if first.astimezone(where).replace(tzinfo=None) == local:
        return first  # it exists; if twice, fold=0 is the first occurrence
    # Skipped: fold=0 reads it with the offset before the gap, fold=1 with the one
    # after; the transition lies between the two readings.
    return _change(where, local.replace(tzinfo=where, fold=1).astimezone(UTC), first)


def _fold_end(now: datetime, where: zoneinfo.ZoneInfo) -> datetime | None:
    """If ``now`` is in the second pass of a fold: the naive local time the fold ends at."""
    local = now.astimezone(where)
    if not local.fold:
        return None
    before = local.replace(fold=0).utcoffset()
    after = local.utcoffset()
    assert before is not None  # zoneinfo always has an offset
    assert after is not None
    transition = _change(where, now - (before - after), now)
    return (transition + before).replace(tzinfo=None)


def _walk(expression: str, start: datetime, reverse: bool) -> Iterator[datetime]:
    return iter(CronSim(expression, start, reverse=reverse))


def latest(expression: str, where: zoneinfo.ZoneInfo, now: datetime) -> datetime:
    """The latest tick at or before ``now`` (UTC)."""
    now = now.astimezone(UTC)
    # In a fold's second pass, all of the repeated hour already ran (in its first pass):
    # walk back from the fold's end (exclusive). Otherwise from now (inclusive: CronSim
    # yields a start's whole second first when the start has microseconds).
    end = _fold_end(now, where)
    start = end if end is not None else now.astimezone(where).replace(tzinfo=None) + ONE_MICROSECOND
    for local in _walk(expression, start, reverse=True):
        tick = instant(local, where)
        if tick <= now:
            return tick
    raise ScheduleError(f"Cron expression {expression!r} has no tick before {now.isoformat()}.")


def following(expression: str, where: zoneinfo.ZoneInfo, now: datetime) -> datetime:
    """The first tick after ``now`` (UTC)."""
    now = now.astimezone(UTC)
    end = _fold_end(now, where)
    start = end - ONE_SECOND if end is not None else now.astimezone(where).replace(tzinfo=None)
    for local in _walk(expression, start, reverse=False):
        tick = instant(local, where)
        if tick > now:
            return tick
    raise ScheduleError(f"Cron expression {expression!r} has no tick after {now.isoformat()}.")
