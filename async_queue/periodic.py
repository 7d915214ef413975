"""Periodic jobs: a cron expression (in a time zone) or an interval, each tick scheduled once.

Declared in settings or with the ``@periodic`` decorator (in a ``tasks`` module
of an installed app, which workers import)::

    ASYNC_QUEUE = {"PERIODIC": [
        {"name": "nightly-report", "function": "reports.tasks.nightly", "cron": "0 3 * * *",
         "timezone": "Europe/Berlin"},
        {"name": "sync", "function": "shop.tasks.sync", "interval": 300, "queue": "sync"},
    ]}

    @periodic(cron="*/15 * * * *")
    def refresh_rates(): ...

or made in the admin or the dashboard (``models.Schedule``, source ``database``).
Workers copy the code's schedules into ``Schedule`` rows too, so that the same pages
show them; there they are read-only but for ``enabled``.

Every worker (``flush_queue --forever``, and a cron-driven ``flush_queue`` when it
starts) schedules the ticks that are due, reading the schedules each time, so an
edit needs no restart. However many run, a tick is scheduled once: a
``PeriodicTick(name, tick_at)`` row with a unique constraint is inserted in the same
transaction as the job, and only the worker whose insert succeeds schedules it.
Tick times come from the schedule, not from a worker's clock, and the job's
``run_after`` is the tick, so a worker whose clock runs ahead cannot start it early
(claims compare with the database clock). How a cron expression reads its zone's
wall clock through DST changes is ``crontime``'s rule.

The first time a code schedule is seen, its latest tick is only recorded: deploying
``0 3 * * *`` at 15:00 does not run it at once. A schedule row runs the ticks after
it was made, enabled or retimed (``Schedule.since``). After downtime, the latest
missed tick runs once; older missed ticks are not replayed.
"""

from __future__ import annotations

import json
import logging
import math
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.module_loading import autodiscover_modules

from . import crontime
from .callables import declared_options, job
from .conf import queue_settings
from .exceptions import ScheduleError
from .models import Job, PeriodicTick, Schedule, ScheduleSource
from .models.schedules import TICK_PREFIX
from .sql import database_now

logger = logging.getLogger("async_queue.periodic")
_registry: dict[str, Periodic] = {}
_discovered = False
# The enabled database schedules each database had when this process last read them,
# for seconds_to_next_tick(); and what this process already logged about.
_stored: dict[str, list[Periodic]] = {}
_logged: set[tuple[Any, ...]] = set()


@dataclass(frozen=True)
class Periodic:
    """One schedule as workers use it: from the code, or read from a ``Schedule`` row."""

    name: str
    function: str
    cron: str | None = None
    interval: float | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = 0
    timezone: str = "UTC"
    source: str = ScheduleSource.SETTINGS
    schedule_id: int | None = None  # the Schedule row of a database schedule
    since: datetime | None = None  # Schedule.since: the ticks after it run

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise ScheduleError(f"Periodic job {self.name!r} needs either cron or interval.")
        if self.schedule_id is None and str(self.name).startswith(TICK_PREFIX):
            raise ScheduleError(
                f"Periodic job {self.name!r}: names starting with {TICK_PREFIX!r} are the "
                "database schedules'; choose another name."
            )
        try:
            crontime.zone(self.timezone)
            if self.cron is not None:
                crontime.check(self.cron)
        except ScheduleError as exc:
            raise ScheduleError(f"Periodic job {self.name!r}: {exc}") from None
        if self.cron is None:
            if not isinstance(self.interval, int | float) or self.interval <= 0:
                raise ScheduleError(
                    f"Periodic job {self.name!r}: interval must be positive seconds."
                )
            if self.timezone != "UTC":
                raise ScheduleError(
                    f"Periodic job {self.name!r}: an interval runs every {self.interval} s "
                    "whatever the zone; drop 'timezone' or use a cron expression."
                )

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return crontime.zone(self.timezone)

    @property
    def tick_name(self) -> str:
        """The ``PeriodicTick.name`` of its ticks (``Schedule.tick_name``)."""
        return self.name if self.schedule_id is None else f"{TICK_PREFIX}{self.schedule_id}"

    def latest_tick(self, now: datetime) -> datetime:
        """The latest tick at or before ``now`` (UTC)."""
        now = now.astimezone(UTC)
        if self.interval is not None:
            # Ticks are multiples of the interval since the epoch: the same on every worker.
            seconds = math.floor(now.timestamp() / self.interval) * self.interval
            return datetime.fromtimestamp(seconds, UTC)
        assert self.cron is not None  # one of cron and interval (__post_init__)
        return crontime.latest(self.cron, self.zone, now)

    def next_tick(self, now: datetime) -> datetime:
        now = now.astimezone(UTC)
        if self.interval is not None:
            return self.latest_tick(now) + timedelta(seconds=self.interval)
        assert self.cron is not None  # one of cron and interval (__post_init__)
        return crontime.following(self.cron, self.zone, now)

    def meta(self) -> dict[str, Any]:
        """What its jobs' ``meta`` says about where they come from."""
        if self.schedule_id is None:
            return {"periodic": self.name}
        return {"periodic": self.name, "schedule": self.schedule_id}

    def row_values(self) -> dict[str, Any]:
        """The fields of the ``Schedule`` row that mirrors a code schedule (JSON as stored)."""
        arguments = json.loads(json.dumps([self.args, self.kwargs], cls=DjangoJSONEncoder))
        return {
            "function": self.function,
            "cron": self.cron or "",
            "interval": self.interval,
            "timezone": self.timezone,
            "args": arguments[0],
            "kwargs": arguments[1],
            "queue": self.queue or "",
            "priority": self.priority,
            "source": self.source,
        }


def periodic(
    *,
    cron: str | None = None,
    interval: float | None = None,
    name: str | None = None,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    priority: int = 0,
    timezone: str = "UTC",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a module-level function as a periodic job (and so a job: see ``@job``).

    ``cron`` reads the wall clock of ``timezone`` (an IANA name; see ``crontime``).
    """

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        if declared_options(function) is None:
            job(function)
        path = f"{function.__module__}.{function.__qualname__}"
        entry = Periodic(
            name or path,
            path,
            cron,
            interval,
            list(args or []),
            dict(kwargs or {}),
            queue,
            priority,
            timezone,
            ScheduleSource.DECORATOR,
        )
        _registry[entry.name] = entry
        return function

    return register


def all_periodic() -> list[Periodic]:
    """Periodic jobs from settings and from ``@periodic`` (in the apps' ``tasks`` modules)."""
    global _discovered
    if not _discovered:
        autodiscover_modules("tasks")
        _discovered = True
    declared = {entry.name: entry for entry in _registry.values()}
    for raw in queue_settings.PERIODIC:
        entry = Periodic(**{**raw, "source": ScheduleSource.SETTINGS})
        declared[entry.name] = entry
    return list(declared.values())


def from_row(row: Schedule) -> Periodic:
    """A database schedule as workers use it; ``ScheduleError`` if the row is unusable."""
    return Periodic(
        name=row.name,
        function=row.function,
        cron=row.cron or None,
        args=row.args,
        kwargs=row.kwargs,
        queue=row.queue or None,
        priority=row.priority,
        timezone=row.timezone,
        source=ScheduleSource.DATABASE,
        schedule_id=row.pk,
        since=row.since,
    )


def _log_once(key: tuple[Any, ...], level: int, message: str, *args: Any) -> None:
    if key not in _logged:
        _logged.add(key)
        logger.log(level, message, *args)


def sync_code_schedules(code: list[Periodic], rows: list[Schedule], using: str = "default") -> None:
    """Write the code's schedules into ``Schedule`` rows where theirs differ or are missing.

    Only the code's fields are written (never ``enabled``); nothing is written when
    the rows match, so this costs no write after the first worker of a deploy. A
    row whose code is gone stays (with its ``enabled``), shown as not declared.
    """
    by_name = {row.name: row for row in rows}
    stored = Schedule.objects.using(using)
    for entry in code:
        row = by_name.get(entry.name)
        try:
            values = entry.row_values()
        except (TypeError, ValueError):
            _log_once(
                ("json", entry.name),
                logging.ERROR,
                "Periodic job %r: arguments are not JSON; it cannot be shown or scheduled.",
                entry.name,
            )
            continue
        if row is not None and not row.is_code:
            _log_once(
                ("clash", entry.name, row.pk),
                logging.ERROR,
                "Periodic job %r (%s) has the name of a schedule made in the database; "
                "both run, but only the database one is shown. Rename one of them.",
                entry.name,
                entry.source,
            )
        elif row is None:
            try:
                with transaction.atomic(using=using):
                    stored.create(name=entry.name, **values)
            except IntegrityError:
                pass  # another worker wrote it first
        elif any(getattr(row, name) != value for name, value in values.items()):
            stored.filter(pk=row.pk).update(**values)


def _enabled(code: list[Periodic], rows: list[Schedule]) -> list[Periodic]:
    """The schedules to run: the code's not disabled in their rows, the enabled stored ones."""
    code_rows = {row.name: row for row in rows if row.is_code}
    entries = []
    for entry in code:
        row = code_rows.get(entry.name)
        if row is None:
            entries.append(entry)
        elif row.enabled:
            entries.append(replace(entry, since=row.since))
    for row in rows:
        if row.enabled and not row.is_code:
            try:
                entries.append(from_row(row))
            except ScheduleError as exc:
                key = ("row", row.pk, row.updated_at)
                _log_once(key, logging.ERROR, "Schedule %r cannot run: %s", row.name, exc)
    return entries


def schedule_due(using: str = "default") -> list[Job]:
    """Schedule the periodic ticks that are due and not yet scheduled; returns the new jobs."""
    rows = list(Schedule.objects.using(using).order_by())
    code = all_periodic()
    sync_code_schedules(code, rows, using)
    entries = _enabled(code, rows)
    _stored[using] = [entry for entry in entries if entry.schedule_id is not None]
    if not entries:
        return []
    now = database_now(using)
    ticks = PeriodicTick.objects.using(using)
    last = dict(
        ticks.filter(name__in=[e.tick_name for e in entries])
        .values_list("name")
        .annotate(last=Max("tick_at"))
        .order_by()
    )
    jobs = []
    for entry in entries:
        try:
            tick = entry.latest_tick(now)
            previous = last.get(entry.tick_name)
            if entry.since is not None:
                # A schedule row runs only the ticks after it (re)started: never the one
                # at or before ``since``, even if a worker that read the row before an
                # edit has just recorded it.
                floor = entry.latest_tick(entry.since)
                previous = floor if previous is None else max(previous, floor)
            if previous is not None and tick <= previous:
                continue
            with transaction.atomic(using=using):
                ticks.create(name=entry.tick_name, tick_at=tick)
                if previous is not None:  # a first sighting only records its baseline
                    jobs.append(_tick_job(entry, tick, using))
                ticks.filter(name=entry.tick_name, tick_at__lt=previous or tick).delete()
                _shown(entry, using).update(
                    next_tick_at=entry.next_tick(now),
                    **({"last_tick_at": tick} if previous is not None else {}),
                )
        except IntegrityError:
            continue  # another worker scheduled this tick
        except ScheduleError:
            logger.exception("Periodic job %r cannot be scheduled.", entry.name)
    return jobs


def _tick_job(entry: Periodic, tick: datetime, using: str) -> Job:
    from .scheduling import schedule

    return schedule(
        entry.function,
        entry.args,
        entry.kwargs,
        run_after=tick,
        queue=entry.queue,
        priority=entry.priority,
        meta={**entry.meta(), "tick": tick.isoformat()},
        using=using,
        on_commit=False,
    )


def _shown(entry: Periodic, using: str) -> Any:
    """The ``Schedule`` row that shows ``entry`` (none, for a code schedule not yet synced)."""
    rows = Schedule.objects.using(using)
    if entry.schedule_id is not None:
        return rows.filter(pk=entry.schedule_id)
    return rows.filter(name=entry.name).exclude(source=ScheduleSource.DATABASE)


def run_now(row: Schedule, *, user: Any = None) -> Job:
    """Schedule one job of ``row`` now: not a tick, so the schedule's ticks go on unchanged.

    A code schedule runs as its code declares it (its row may lag behind a deploy).
    ``ScheduleError`` if the function or arguments cannot be scheduled.
    """
    from .scheduling import schedule

    declared = {entry.name: entry for entry in all_periodic()} if row.is_code else {}
    entry = declared.get(row.name)
    meta: dict[str, Any] = {"periodic": row.name, "run_now": True}
    if not row.is_code:
        meta["schedule"] = row.pk
    if entry is None:
        function, args, kwargs = row.function, row.args, row.kwargs
        queue, priority = row.queue or None, row.priority
    else:
        function, args, kwargs = entry.function, entry.args, entry.kwargs
        queue, priority = entry.queue, entry.priority
    return schedule(
        function,
        args,
        kwargs,
        queue=queue,
        priority=priority,
        meta=meta,
        user=user,
        using=row._state.db,
        on_commit=False,  # in the caller's transaction, if any: its pk is known at once
    )


def seconds_to_next_tick(now: datetime | None = None) -> float | None:
    """Seconds until the next tick of any periodic job (local clock), or None if there are none.

    The database schedules counted are those this process read last (``schedule_due``).
    """
    entries = all_periodic() + [entry for stored in _stored.values() for entry in stored]
    if not entries:
        return None
    now = now or datetime.now(UTC)
    return max(min((e.next_tick(now) - now).total_seconds() for e in entries), 0.0)
