"""Database schedules: validation, their ticks with fixed clocks, code schedules beside them."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from async_queue import Job, periodic
from async_queue.models import PeriodicTick, Schedule, ScheduleSource
from async_queue.periodic import run_now, schedule_due, seconds_to_next_tick
from async_queue.schedule_forms import ScheduleForm

pytestmark = pytest.mark.django_db
ECHO = "tests.testapp.tasks.echo"
CODE = {"PERIODIC": [{"name": "code-tick", "function": ECHO, "cron": "*/5 * * * *"}]}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    """The database clock the schedulers read, set by the test: ``clock.now = ...``."""

    class Clock:
        now = utc(2026, 1, 1)

    monkeypatch.setattr(periodic, "database_now", lambda using: Clock.now)
    return Clock


def make(since: datetime | None = None, **fields) -> Schedule:
    """A database schedule, made (and so started afresh) at ``since``."""
    fields = {"name": "s", "function": ECHO, "cron": "0 * * * *", **fields}
    schedule = Schedule.objects.create(**fields)
    if since is not None:
        Schedule.objects.filter(pk=schedule.pk).update(since=since)
        schedule.refresh_from_db()
    return schedule


def run_clock(clock, start, end, step=timedelta(minutes=1), schedulers=3) -> list[Job]:
    """Step the clock through ``[start, end)``; at each step ``schedulers`` call schedule_due."""
    jobs = []
    clock.now = start
    while clock.now < end:
        for _ in range(schedulers):
            jobs += schedule_due()
        clock.now += step
    return jobs


def ticks_of(jobs: list[Job]) -> list[datetime]:
    return [datetime.fromisoformat(job.meta["tick"]) for job in jobs]


# -- validation -----------------------------------------------------------------------


def form(**data) -> ScheduleForm:
    values = {"name": "nightly", "function": ECHO, "cron": "30 2 * * *", "timezone": "UTC"}
    values.update({"args": "[]", "kwargs": "{}", "queue": "", "priority": "", "enabled": "on"})
    return ScheduleForm({**values, **data})


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", "Bad cron expression '61 * * * *'"),
        ({"cron": ""}, "cron", "A cron expression is needed"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Select a valid choice"),
        ({"function": "os.system"}, "function", "is not a declared job"),
        ({"function": "tests.testapp.tasks.undeclared"}, "function", "@async_queue.job"),
        ({"function": "tests.testapp.tasks.missing"}, "function", "has no attribute 'missing'"),
        ({"args": '{"a": 1}'}, "args", "args must be a list"),
        ({"kwargs": "[1]"}, "kwargs", "kwargs must be a dict"),
        ({"args": '["\\u0000"]'}, "args", "NUL"),
        ({"args": "[1"}, "args", "Enter a valid JSON"),
        ({"priority": str(2**31)}, "priority", "less than or equal to"),
    ],
)
def test_the_form_refuses_what_a_worker_would_trip_over(data, field, message):
    bound = form(**data)
    assert not bound.is_valid()
    assert message in " ".join(bound.errors[field]), bound.errors


@override_settings(ASYNC_QUEUE=CODE)
def test_a_database_schedule_cannot_take_a_code_schedules_name():
    bound = form(name="code-tick")
    assert not bound.is_valid()
    assert "declared in code (settings); choose another name" in bound.errors["name"][0]


def test_a_valid_form_saves_a_database_schedule_with_normalised_arguments():
    saved = form(args='[1, "two"]', kwargs='{"x": {"y": 2}}', timezone="Europe/Berlin").save()
    assert (saved.source, saved.args, saved.kwargs) == ("database", [1, "two"], {"x": {"y": 2}})
    assert saved.next_tick_at is not None
    assert saved.since is not None


def test_the_model_checks_cron_and_zone_by_itself():
    schedule = Schedule(name="x", function=ECHO, cron="* * *", timezone="Nowhere/City")
    with pytest.raises(ValidationError) as caught:
        schedule.full_clean()
    assert set(caught.value.message_dict) == {"cron", "timezone"}
    with pytest.raises(ValidationError, match="A cron expression is needed"):
        Schedule(name="y", function=ECHO, interval=5).full_clean()


# -- ticks with fixed clocks ---------------------------------------------------------------


def test_each_tick_in_the_schedules_zone_is_scheduled_once_by_three_schedulers(clock):
    schedule = make(cron="0 * * * *", timezone="Asia/Kathmandu", since=utc(2026, 1, 1, 0, 1))
    jobs = run_clock(clock, utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 4, 5))
    # Kathmandu is UTC+05:45: its whole hours are at a quarter past in UTC.
    assert ticks_of(jobs) == [utc(2026, 1, 1, hour, 15) for hour in range(4)]
    assert {job.meta["schedule"] for job in jobs} == {schedule.pk}
    assert all(job.run_after == tick for job, tick in zip(jobs, ticks_of(jobs), strict=True))
    assert set(PeriodicTick.objects.values_list("name", flat=True)) == {f"schedule:{schedule.pk}"}
    schedule.refresh_from_db()
    assert schedule.last_tick_at == utc(2026, 1, 1, 3, 15)
    assert schedule.next_tick_at == utc(2026, 1, 1, 4, 15)


def test_dst_nights_follow_the_documented_rule(clock):
    daily = make(name="daily", cron="30 2 * * *", timezone="Europe/Berlin")
    hourly = make(name="hourly", cron="0 * * * *", timezone="Europe/Berlin")
    Schedule.objects.update(since=utc(2026, 3, 28, 23, 30))
    spring = run_clock(clock, utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 3, 30))
    Schedule.objects.update(since=utc(2026, 10, 24, 22, 30))  # as if made again, in October
    fall = run_clock(clock, utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 3, 30))

    def local(jobs, schedule):
        zone = schedule.timezone
        chosen = [job for job in jobs if job.meta["schedule"] == schedule.pk]
        return [
            t.astimezone(periodic.crontime.zone(zone)).strftime("%H:%M %Z")
            for t in ticks_of(chosen)
        ]

    assert local(spring, daily) == ["03:00 CEST"]  # 02:30 does not exist: once, after the gap
    assert local(spring, hourly) == ["01:00 CET", "03:00 CEST", "04:00 CEST", "05:00 CEST"]
    assert local(fall, daily) == ["02:30 CEST"]  # 02:30 happens twice: once, the first time
    assert local(fall, hourly) == ["01:00 CEST", "02:00 CEST", "03:00 CET", "04:00 CET"]


def test_a_new_schedule_runs_the_first_tick_after_it_was_made_even_if_seen_late(clock):
    make(cron="*/5 * * * *", since=utc(2026, 1, 1, 0, 3))
    clock.now = utc(2026, 1, 1, 0, 7)  # the first worker to look comes after 00:05
    assert ticks_of(schedule_due()) == [utc(2026, 1, 1, 0, 5)]
    clock.now = utc(2026, 1, 1, 0, 4)
    assert schedule_due() == []  # nothing before


def test_after_downtime_only_the_latest_missed_tick_runs(clock):
    make(cron="*/5 * * * *", since=utc(2026, 1, 1))
    run_clock(clock, utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 6))
    clock.now = utc(2026, 1, 1, 1, 2)
    assert ticks_of(schedule_due()) == [utc(2026, 1, 1, 1, 0)]


def test_a_disabled_schedule_does_not_run_and_re_enabled_runs_no_missed_tick(clock):
    schedule = make(cron="*/5 * * * *", since=utc(2026, 1, 1))
    assert len(run_clock(clock, utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 6))) == 1
    schedule.enabled = False
    schedule.save()
    assert schedule.next_tick_at is None
    assert not PeriodicTick.objects.exists()  # forgotten: it starts afresh
    assert run_clock(clock, utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 11)) == []
    schedule.enabled = True
    schedule.save()
    Schedule.objects.filter(pk=schedule.pk).update(since=utc(2026, 1, 1, 0, 12))
    clock.now = utc(2026, 1, 1, 0, 13)
    assert schedule_due() == []  # 00:10 was missed while disabled: not run
    clock.now = utc(2026, 1, 1, 0, 15)
    assert ticks_of(schedule_due()) == [utc(2026, 1, 1, 0, 15)]


def test_an_edit_is_read_at_the_next_call_without_a_restart(clock):
    schedule = make(cron="0 * * * *", since=utc(2026, 1, 1))
    assert ticks_of(run_clock(clock, utc(2026, 1, 1, 1), utc(2026, 1, 1, 1, 1))) == [
        utc(2026, 1, 1, 1)
    ]
    schedule.cron = "*/10 * * * *"
    schedule.timezone = "America/New_York"
    schedule.save()
    Schedule.objects.filter(pk=schedule.pk).update(since=utc(2026, 1, 1, 1, 1))
    jobs = run_clock(clock, utc(2026, 1, 1, 1, 1), utc(2026, 1, 1, 1, 31))
    assert ticks_of(jobs) == [
        utc(2026, 1, 1, 1, 10),
        utc(2026, 1, 1, 1, 20),
        utc(2026, 1, 1, 1, 30),
    ]
    assert seconds_to_next_tick(utc(2026, 1, 1, 1, 35)) == 300.0  # the stored one counts


def test_a_row_that_cannot_run_is_logged_once_and_the_others_still_run(clock, caplog):
    make(name="good", cron="*/5 * * * *", since=utc(2026, 1, 1))
    bad = make(name="bad", cron="*/5 * * * *", since=utc(2026, 1, 1))
    Schedule.objects.filter(pk=bad.pk).update(cron="not cron")  # a row written around the form
    with caplog.at_level(logging.ERROR, logger="async_queue.periodic"):
        jobs = run_clock(clock, utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 11), schedulers=1)
    assert [job.meta["periodic"] for job in jobs] == ["good", "good"]
    assert caplog.text.count("Schedule 'bad' cannot run") == 1


def test_run_now_queues_one_job_and_leaves_the_ticks_alone(clock, superuser):
    schedule = make(cron="*/5 * * * *", args=[1], kwargs={"k": "v"}, since=utc(2026, 1, 1))
    job = run_now(schedule, user=superuser)
    assert (job.name, job.args, job.kwargs, job.user) == (ECHO, [1], {"k": "v"}, superuser)
    assert job.meta == {"periodic": "s", "schedule": schedule.pk, "run_now": True}
    assert not PeriodicTick.objects.exists()
    clock.now = utc(2026, 1, 1, 0, 5)
    assert len(schedule_due()) == 1  # the schedule's own tick is still due


# -- the code's schedules beside them ------------------------------------------------------


@override_settings(ASYNC_QUEUE=CODE)
def test_code_schedules_are_copied_into_rows_and_follow_the_code(clock):
    schedule_due()
    row = Schedule.objects.get()
    assert (row.name, row.source, row.cron, row.function) == (
        "code-tick",
        ScheduleSource.SETTINGS,
        "*/5 * * * *",
        ECHO,
    )
    assert row.is_code
    retimed = {"PERIODIC": [{**CODE["PERIODIC"][0], "cron": "0 3 * * *", "timezone": "Asia/Tokyo"}]}
    with override_settings(ASYNC_QUEUE=retimed):
        schedule_due()
    row.refresh_from_db()
    assert (row.cron, row.timezone, row.enabled) == ("0 3 * * *", "Asia/Tokyo", True)


@override_settings(ASYNC_QUEUE=CODE)
def test_a_code_schedule_disabled_in_its_row_stops_and_restarts_afresh(clock):
    clock.now = utc(2026, 1, 1, 0, 1)
    schedule_due()  # the first sighting: a baseline, and the row
    clock.now = utc(2026, 1, 1, 0, 5)
    assert ticks_of(schedule_due()) == [utc(2026, 1, 1, 0, 5)]
    row = Schedule.objects.get()
    row.enabled = False
    row.save()
    clock.now = utc(2026, 1, 1, 0, 10)
    assert schedule_due() == []
    row.enabled = True
    row.save()
    Schedule.objects.filter(pk=row.pk).update(since=utc(2026, 1, 1, 0, 11))
    clock.now = utc(2026, 1, 1, 0, 12)
    assert schedule_due() == []
    clock.now = utc(2026, 1, 1, 0, 15)
    assert ticks_of(schedule_due()) == [utc(2026, 1, 1, 0, 15)]
    row.refresh_from_db()
    assert row.last_tick_at == utc(2026, 1, 1, 0, 15)


@override_settings(ASYNC_QUEUE=CODE)
def test_a_code_schedule_with_a_database_schedules_name_runs_apart_and_is_logged(clock, caplog):
    stored = make(name="code-tick", cron="*/5 * * * *", since=utc(2026, 1, 1))
    clock.now = utc(2026, 1, 1, 0, 1)
    with caplog.at_level(logging.ERROR, logger="async_queue.periodic"):
        schedule_due()
    clock.now = utc(2026, 1, 1, 0, 5)
    jobs = schedule_due()
    assert sorted(str(job.meta.get("schedule")) for job in jobs) == [str(stored.pk), "None"]
    assert "has the name of a schedule made in the database" in caplog.text
    assert Schedule.objects.get().source == ScheduleSource.DATABASE  # not overwritten


def test_the_decorator_takes_a_zone_and_marks_its_source():
    from tests.testapp import tasks

    periodic.periodic(cron="0 9 * * 1-5", timezone="Europe/Paris", name="weekday-nine")(tasks.echo)
    try:
        (entry,) = [e for e in periodic.all_periodic() if e.name == "weekday-nine"]
        assert (entry.source, entry.timezone) == (ScheduleSource.DECORATOR, "Europe/Paris")
        assert entry.next_tick(utc(2026, 7, 3, 8)) == utc(2026, 7, 6, 7)  # Monday 09:00 CEST
    finally:
        periodic._registry.pop("weekday-nine")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "0 3 * * *", "timezone": "Europe/Nowhere"}, "is not a time zone"),
        ({"interval": 60, "timezone": "Europe/Berlin"}, "drop 'timezone'"),
        ({"cron": "0 3 * * *", "name": "schedule:7"}, "are the database schedules'"),
    ],
)
def test_bad_code_declarations_are_named(options, message):
    from async_queue import ScheduleError
    from async_queue.periodic import Periodic

    with pytest.raises(ScheduleError, match=message):
        Periodic(**{"name": "x", "function": ECHO, **options})
