"""Row 36: database schedules. Real workers run each tick of a 1 s schedule in a non-UTC
zone once, follow an edit and a disable without a restart; a DST night, simulated with a
fixed database clock and three concurrent schedulers, follows the documented rule.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from async_queue import Job, crontime, periodic
from async_queue.models import PeriodicTick, Schedule
from tests.conftest import wait_for
from tests.faults.conftest import report, size
from tests.testapp.models import Record

pytestmark = pytest.mark.django_db(transaction=True)
RECORD_TICK = "tests.testapp.tasks.record_tick"
# A worker that read the schedule just before an edit may still schedule the tick it
# was scheduling: at most this much after the edit.
IN_FLIGHT = 1.0


def recorded() -> list[datetime]:
    return sorted(
        datetime.fromisoformat(label) for label in Record.objects.values_list("label", flat=True)
    )


def gaps(moments: list[datetime]) -> set[float]:
    return {round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(moments)}


def test_three_workers_run_each_tick_of_a_one_second_zoned_schedule_once(start_worker):
    """Row 36: 3 workers, `* * * * * *` in Asia/Kathmandu: every tick once, none missed;
    retimed to every 2 s and then disabled while they run, both followed without a restart."""
    wanted = int(size(10, 30))
    schedule = Schedule.objects.create(
        name="every-second", function=RECORD_TICK, cron="* * * * * *", timezone="Asia/Kathmandu"
    )
    started = time.monotonic()
    workers = [start_worker("--forever", "--sleep", "0.1", "-v", "0") for _ in range(3)]
    wait_for(lambda: Record.objects.count() >= wanted, timeout=wanted + 60)
    first_phase = time.monotonic() - started

    schedule.cron = "*/2 * * * * *"
    schedule.save()  # as the dashboard's and the admin's forms do
    retimed = schedule.since
    wait_for(lambda: sum(t > retimed for t in recorded()) >= 3, timeout=30)

    schedule.enabled = False
    schedule.save()
    disabled = timezone.now()
    time.sleep(3 + IN_FLIGHT)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait() == 0, worker.stderr
        assert "Traceback" not in worker.stderr, worker.stderr

    ticks = recorded()
    every_second = [t for t in ticks if t <= retimed]
    every_two = [t for t in ticks if t > retimed]
    late = [t for t in ticks if t > disabled + timedelta(seconds=IN_FLIGHT)]
    jobs = Job.objects.filter(meta__schedule=schedule.pk)
    assert len(ticks) == len(set(ticks))  # no tick ran twice
    assert jobs.count() == len(ticks)  # nor was scheduled twice
    assert not jobs.exclude(status="succeeded").exists()
    assert len(every_second) >= wanted
    assert gaps(every_second) == {1.0}  # none was skipped
    assert gaps(every_two) == {2.0}
    assert all(t.second % 2 == 0 for t in every_two)
    assert late == []
    lateness = [(job.started_at - job.run_after).total_seconds() for job in jobs]
    report(
        36,
        "database schedules: 3 workers, a 1 s schedule in a non-UTC zone",
        workers=len(workers),
        zone="Asia/Kathmandu",
        ticks_every_second=len(every_second),
        gaps_every_second_s=sorted(gaps(every_second)),
        ticks_after_retime=len(every_two),
        gaps_after_retime_s=sorted(gaps(every_two)),
        jobs=jobs.count(),
        duplicates=len(ticks) - len(set(ticks)),
        ticks_after_disable=len(late),
        started_after_tick_s=[round(min(lateness), 2), round(max(lateness), 2)],
        seconds_for_first_ticks=round(first_phase, 1),
    )


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


BERLIN = crontime.zone("Europe/Berlin")
CODE_HOURLY = {
    "PERIODIC": [
        {
            "name": "code-hourly",
            "function": "tests.testapp.tasks.echo",
            "cron": "0 * * * *",
            "timezone": "Europe/Berlin",
        }
    ]
}
# The documented rule, as local times: a skipped 02:30 runs once at the end of the gap,
# a repeated one once, the first time; an hourly schedule has no second 02:00.
EXPECTED = {
    "spring": {
        "daily": ["03:00 CEST"],
        "hourly": ["01:00 CET", "03:00 CEST", "04:00 CEST", "05:00 CEST"],
    },
    "fall": {
        "daily": ["02:30 CEST"],
        "hourly": ["01:00 CEST", "02:00 CEST", "03:00 CET", "04:00 CET"],
    },
}
NIGHTS = {
    "spring": (utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 3, 30)),
    "fall": (utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 3, 30)),
}


class FixedClock:
    """The database clock ``schedule_due`` reads, moved by the test alone."""

    def __init__(self) -> None:
        self.now = utc(2026, 1, 1)

    def __call__(self, using: str) -> datetime:
        return self.now


def scheduler(clock: FixedClock, steps: int, barrier: threading.Barrier, errors: list) -> None:
    """One of three concurrent schedulers: ``schedule_due`` at each step of the clock."""
    try:
        for _ in range(steps):
            barrier.wait()  # the clock moved
            periodic.schedule_due()
            barrier.wait()  # everyone is done with this step
    except Exception as exc:  # reported by the test
        errors.append(exc)
        barrier.abort()
    finally:
        connections.close_all()


@override_settings(ASYNC_QUEUE=CODE_HOURLY)
def test_dst_nights_with_a_fixed_clock_follow_the_documented_rule(monkeypatch):
    """Row 36: a spring-forward and a fall-back night in Europe/Berlin, three schedulers."""
    step = timedelta(minutes=size(5, 1))
    clock = FixedClock()
    monkeypatch.setattr(periodic, "database_now", clock)
    daily = Schedule.objects.create(
        name="daily", function=RECORD_TICK, cron="30 2 * * *", timezone="Europe/Berlin"
    )
    hourly = Schedule.objects.create(
        name="hourly", function=RECORD_TICK, cron="0 * * * *", timezone="Europe/Berlin"
    )
    found: dict[str, dict[str, list[str]]] = {}
    calls = 0
    for night, (start, end) in NIGHTS.items():
        # Each night as if the schedules were made just before it.
        Schedule.objects.update(since=start)
        PeriodicTick.objects.all().delete()
        Job.objects.all().delete()
        steps = int((end - start) / step)
        barrier = threading.Barrier(4)
        errors: list[Exception] = []
        threads = [
            threading.Thread(target=scheduler, args=(clock, steps, barrier, errors))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for index in range(steps):
            clock.now = start + index * step
            barrier.wait()
            barrier.wait()
        for thread in threads:
            thread.join()
        assert errors == []
        calls += 3 * steps
        found[night] = {}
        for name, schedule in (("daily", daily), ("hourly", hourly), ("code", None)):
            jobs = Job.objects.filter(meta__periodic=schedule.name if schedule else "code-hourly")
            ticks = sorted(
                datetime.fromisoformat(tick) for tick in jobs.values_list("meta__tick", flat=True)
            )
            assert len(ticks) == len(set(ticks)), (night, name, ticks)  # exactly once
            found[night][name] = [t.astimezone(BERLIN).strftime("%H:%M %Z") for t in ticks]
        for name in ("daily", "hourly"):
            assert found[night][name] == EXPECTED[night][name], (night, name)
        # The code's schedule, first seen at the night's start, follows the same rule.
        assert found[night]["code"] == EXPECTED[night]["hourly"], night
    report(
        36,
        "database schedules: DST nights with a fixed clock (Europe/Berlin)",
        schedulers=3,
        clock_step_minutes=step.total_seconds() / 60,
        schedule_due_calls=calls,
        spring_daily_0230=found["spring"]["daily"],
        spring_hourly=found["spring"]["hourly"],
        fall_daily_0230=found["fall"]["daily"],
        fall_hourly=found["fall"]["hourly"],
        code_schedule_same_rule=found["spring"]["code"] == EXPECTED["spring"]["hourly"],
    )
