"""Periodic jobs: a cron expression or an interval, each tick scheduled exactly once.

Declared in settings or with the ``@periodic`` decorator (in a ``tasks`` module
of an installed app, which workers import)::

    ASYNC_QUEUE = {"PERIODIC": [
        {"name": "nightly-report", "function": "reports.tasks.nightly", "cron": "0 3 * * *"},
        {"name": "sync", "function": "shop.tasks.sync", "interval": 300, "queue": "sync"},
    ]}

    @periodic(cron="*/15 * * * *")
    def refresh_rates(): ...

Every worker (``flush_queue --forever``, and a cron-driven ``flush_queue`` when it
starts) schedules the ticks that are due. However many run, a tick is scheduled
once: a ``PeriodicTick(name, tick_at)`` row with a unique constraint is inserted
in the same transaction as the job, and only the worker whose insert succeeds
schedules it. Tick times come from the schedule, not from a worker's clock, and
the job's ``run_after`` is the tick, so a worker whose clock runs ahead cannot
start it early (claims compare with the database clock).

The first time a schedule is seen, its latest tick is only recorded: deploying
``0 3 * * *`` at 15:00 does not run it at once. After downtime, the latest
missed tick runs once; older missed ticks are not replayed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.module_loading import autodiscover_modules

from .callables import declared_options, job
from .conf import queue_settings
from .exceptions import ScheduleError
from .models import Job, PeriodicTick
from .sql import database_now

logger = logging.getLogger("async_queue.periodic")
_registry: dict[str, Periodic] = {}
_discovered = False


@dataclass(frozen=True)
class Periodic:
    name: str
    function: str
    cron: str | None = None
    interval: float | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int = 0

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise ScheduleError(f"Periodic job {self.name!r} needs either cron or interval.")
        if self.cron is not None:
            try:
                CronSim(self.cron, datetime(2000, 1, 1, tzinfo=UTC))
            except CronSimError as exc:
                raise ScheduleError(
                    f"Periodic job {self.name!r}: bad cron {self.cron!r}: {exc}"
                ) from None
        elif not isinstance(self.interval, int | float) or self.interval <= 0:
            raise ScheduleError(f"Periodic job {self.name!r}: interval must be positive seconds.")

    def latest_tick(self, now: datetime) -> datetime:
        """The latest tick at or before ``now`` (UTC)."""
        now = now.astimezone(UTC)
        if self.interval is not None:
            # Ticks are multiples of the interval since the epoch: the same on every worker.
            seconds = math.floor(now.timestamp() / self.interval) * self.interval
            return datetime.fromtimestamp(seconds, UTC)
        assert self.cron is not None  # one of cron and interval (__post_init__)
        return next(CronSim(self.cron, now + timedelta(microseconds=1), reverse=True))

    def next_tick(self, now: datetime) -> datetime:
        now = now.astimezone(UTC)
        if self.interval is not None:
            return self.latest_tick(now) + timedelta(seconds=self.interval)
        assert self.cron is not None  # one of cron and interval (__post_init__)
        return next(CronSim(self.cron, now))


def periodic(
    *,
    cron: str | None = None,
    interval: float | None = None,
    name: str | None = None,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    priority: int = 0,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a module-level function as a periodic job (and so a job: see ``@job``)."""

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
        entry = Periodic(**raw)
        declared[entry.name] = entry
    return list(declared.values())


def schedule_due(using: str = "default") -> list[Job]:
    """Schedule the periodic ticks that are due and not yet scheduled; returns the new jobs."""
    from .scheduling import schedule

    entries = all_periodic()
    if not entries:
        return []
    now = database_now(using)
    ticks = PeriodicTick.objects.using(using)
    last = dict(
        ticks.filter(name__in=[e.name for e in entries])
        .values_list("name")
        .annotate(last=Max("tick_at"))
        .order_by()
    )
    jobs = []
    for entry in entries:
        tick = entry.latest_tick(now)
        previous = last.get(entry.name)
        if previous is not None and tick <= previous:
            continue
        try:
            with transaction.atomic(using=using):
                ticks.create(name=entry.name, tick_at=tick)
                if previous is not None:  # a first sighting only records its baseline
                    jobs.append(
                        schedule(
                            entry.function,
                            entry.args,
                            entry.kwargs,
                            run_after=tick,
                            queue=entry.queue,
                            priority=entry.priority,
                            meta={"periodic": entry.name, "tick": tick.isoformat()},
                            using=using,
                            on_commit=False,
                        )
                    )
                ticks.filter(name=entry.name, tick_at__lt=previous or tick).delete()
        except IntegrityError:
            continue  # another worker scheduled this tick
        except ScheduleError:
            logger.exception("Periodic job %r cannot be scheduled.", entry.name)
    return jobs


def seconds_to_next_tick(now: datetime | None = None) -> float | None:
    """Seconds until the next tick of any periodic job (local clock), or None if there are none."""
    entries = all_periodic()
    if not entries:
        return None
    now = now or datetime.now(UTC)
    return max(min((e.next_tick(now) - now).total_seconds() for e in entries), 0.0)
