import datetime as dt
import itertools
import signal
import time

import pytest
from django.test import override_settings

from async_queue import Job, ScheduleError
from async_queue.models import PeriodicTick
from async_queue.periodic import Periodic, periodic, schedule_due, seconds_to_next_tick
from async_queue.sql import database_now
from tests.conftest import wait_for
from tests.testapp import tasks
from tests.testapp.models import Record

pytestmark = pytest.mark.django_db(transaction=True)
UTC = dt.UTC
EVERY_SECOND = {
    "PERIODIC": [{"name": "tick", "function": "tests.testapp.tasks.record_tick", "interval": 1}]
}


def test_latest_and_next_ticks():
    now = dt.datetime(2026, 11, 21, 7, 40, 30, tzinfo=UTC)
    cron = Periodic("c", "tests.testapp.tasks.echo", cron="*/15 * * * *")
    assert cron.latest_tick(now) == dt.datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
    assert cron.next_tick(now) == dt.datetime(2026, 11, 21, 7, 45, tzinfo=UTC)
    exact = dt.datetime(2026, 11, 21, 7, 45, tzinfo=UTC)
    assert cron.latest_tick(exact) == exact
    every = Periodic("i", "tests.testapp.tasks.echo", interval=600)
    assert every.latest_tick(now) == dt.datetime(2026, 11, 21, 7, 40, tzinfo=UTC)
    assert every.next_tick(now) == dt.datetime(2026, 11, 21, 7, 50, tzinfo=UTC)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs either cron or interval"),
        ({"cron": "* * *", "interval": 5}, "needs either cron or interval"),
        ({"cron": "61 * * * *"}, "Bad cron expression"),
        ({"interval": 0}, "interval must be positive"),
    ],
)
def test_bad_declarations(options, message):
    with pytest.raises(ScheduleError, match=message):
        Periodic("x", "tests.testapp.tasks.echo", **options)


@override_settings(ASYNC_QUEUE=EVERY_SECOND)
def test_first_sighting_records_then_each_new_tick_is_scheduled_once():
    # Start just after a tick, so that the calls meant for one tick cannot straddle two.
    time.sleep(seconds_to_next_tick(database_now("default")) + 0.05)
    assert schedule_due() == []  # the baseline only
    assert PeriodicTick.objects.count() == 1
    assert schedule_due() == []  # same tick
    time.sleep(1.05)
    (job,) = schedule_due()
    assert job.meta["periodic"] == "tick"
    assert job.run_after == dt.datetime.fromisoformat(job.meta["tick"])
    assert schedule_due() == []
    assert PeriodicTick.objects.count() == 2  # older ticks are pruned


def test_decorator_registers_a_periodic_job():
    from async_queue import periodic as module

    periodic(interval=3600, name="hourly-test")(tasks.echo)
    try:
        assert "hourly-test" in {entry.name for entry in module.all_periodic()}
    finally:
        module._registry.pop("hourly-test")


def test_decorator_declares_the_job_and_refuses_a_nested_function():
    from async_queue.callables import declared_options

    assert declared_options(tasks.record_tick) is not None

    with pytest.raises(TypeError, match="not a module-level function"):

        @periodic(interval=3600, name="nested-test")
        def nested():
            pass


def test_three_workers_schedule_each_of_30_ticks_exactly_once(start_worker):
    env = {"ASYNC_QUEUE_TEST_PERIODIC": "0.5"}
    workers = [start_worker("--forever", "--sleep", "0.1", env=env) for _ in range(3)]
    wait_for(lambda: Record.objects.count() >= 31, timeout=60)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait()
    ticks = sorted(
        dt.datetime.fromisoformat(t) for t in Record.objects.values_list("label", flat=True)
    )
    assert len(ticks) == len(set(ticks))  # no tick ran twice
    gaps = {round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(ticks)}
    assert gaps == {0.5}  # and none was skipped
    assert Job.objects.filter(meta__periodic="tick").count() == len(ticks)
