"""Cron on a zone's wall clock, through DST changes, with fixed clocks (``crontime``)."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from cronsim import CronSim

from async_queue import ScheduleError, crontime

BERLIN = crontime.zone("Europe/Berlin")  # 2026: 29 March 02:00 -> 03:00, 25 October 03:00 -> 02:00
NEW_YORK = crontime.zone(
    "America/New_York"
)  # 2026: 8 March 02:00 -> 03:00, 1 November 02:00 -> 01:00


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def ticks(expression, zone, start, end):
    """Every tick in ``(start, end]``, walking as a worker's clock would."""
    found, now = [], start
    while (now := crontime.following(expression, zone, now)) <= end:
        found.append(now)
    return found


def local(moments, zone):
    return [moment.astimezone(zone).strftime("%H:%M %Z") for moment in moments]


def test_a_daily_time_skipped_by_spring_forward_runs_once_at_the_end_of_the_gap():
    night = ticks("30 2 * * *", BERLIN, utc(2026, 3, 27, 12), utc(2026, 3, 30, 12))
    assert night == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    assert local(night, BERLIN) == ["02:30 CET", "03:00 CEST", "02:30 CEST"]
    assert ticks("30 2 * * *", NEW_YORK, utc(2026, 3, 8), utc(2026, 3, 9)) == [utc(2026, 3, 8, 7)]


def test_an_hourly_schedule_has_one_tick_for_the_skipped_hour_and_the_hour_after_it():
    night = ticks("0 * * * *", BERLIN, utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 3))
    assert local(night, BERLIN) == ["01:00 CET", "03:00 CEST", "04:00 CEST", "05:00 CEST"]
    quarter = ticks("*/15 * * * *", BERLIN, utc(2026, 3, 29, 0, 40), utc(2026, 3, 29, 1, 20))
    assert local(quarter, BERLIN) == ["01:45 CET", "03:00 CEST", "03:15 CEST"]


def test_a_daily_time_repeated_by_fall_back_runs_once_at_its_first_occurrence():
    night = ticks("30 2 * * *", BERLIN, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))
    assert night == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert local(night, BERLIN) == ["02:30 CEST", "02:30 CET"]
    assert ticks("30 1 * * *", NEW_YORK, utc(2026, 11, 1), utc(2026, 11, 2)) == [
        utc(2026, 11, 1, 5, 30)  # 01:30 EDT; not 01:30 EST an hour later
    ]


def test_an_hourly_schedule_skips_the_repeated_hour():
    night = ticks("0 * * * *", BERLIN, utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 3))
    assert local(night, BERLIN) == ["01:00 CEST", "02:00 CEST", "03:00 CET", "04:00 CET"]
    # Inside the second pass the latest tick is the first pass's.
    assert crontime.latest("0 * * * *", BERLIN, utc(2026, 10, 25, 1, 30)) == utc(2026, 10, 25)
    assert crontime.following("0 * * * *", BERLIN, utc(2026, 10, 25, 1)) == utc(2026, 10, 25, 2)


def test_latest_and_following_bracket_now_to_the_microsecond():
    now = utc(2026, 6, 1, 7, 40, 30, 500)
    assert crontime.latest("*/15 * * * *", BERLIN, now) == utc(2026, 6, 1, 7, 30)
    assert crontime.following("*/15 * * * *", BERLIN, now) == utc(2026, 6, 1, 7, 45)
    exact = utc(2026, 6, 1, 7, 45)
    assert crontime.latest("*/15 * * * *", BERLIN, exact) == exact
    assert crontime.following("*/15 * * * *", BERLIN, exact) == utc(2026, 6, 1, 8)
    # A sixth field counts seconds.
    assert crontime.latest("* * * * * *", BERLIN, now) == utc(2026, 6, 1, 7, 40, 30)


def reference(expression, zone, start, end):
    """The documented rule by brute force: every matching local time, mapped, deduplicated."""
    begin = start.astimezone(zone).replace(tzinfo=None) - timedelta(hours=4)
    stop = end.astimezone(zone).replace(tzinfo=None) + timedelta(hours=4)
    found = set()
    for wall in CronSim(expression, begin):
        if wall > stop:
            return sorted(found)
        found.add(crontime.instant(wall, zone))
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("key", "transition"),
    [
        ("Europe/Berlin", utc(2026, 3, 29, 1)),
        ("Europe/Berlin", utc(2026, 10, 25, 1)),
        ("America/New_York", utc(2026, 11, 1, 6)),
        ("Australia/Lord_Howe", utc(2026, 4, 4, 15)),  # a half-hour change
    ],
)
@pytest.mark.parametrize("expression", ["30 2 * * *", "0 * * * *", "15,45 * * * *", "*/20 * * * *"])
def test_random_clocks_around_a_transition_agree_with_the_rule(key, transition, expression):
    zone = crontime.zone(key)
    expected = reference(
        expression, zone, transition - timedelta(hours=30), transition + timedelta(hours=30)
    )
    rng = random.Random(f"{key}{transition}{expression}")
    for _ in range(60):
        now = transition + timedelta(seconds=rng.uniform(-3 * 3600, 3 * 3600))
        assert crontime.latest(expression, zone, now) == max(t for t in expected if t <= now)
        assert crontime.following(expression, zone, now) == min(t for t in expected if t > now)


@pytest.mark.parametrize(
    "key", ["Mars/Olympus", "", "posixrules", "../../etc/passwd", None, "utc "]
)
def test_a_zone_must_be_an_iana_name(key):
    with pytest.raises(ScheduleError, match="is not a time zone; use an IANA name"):
        crontime.zone(key)


@pytest.mark.parametrize("expression", ["61 * * * *", "* * *", "", "0 3 * * mon-xyz", None])
def test_a_bad_cron_expression_is_named(expression):
    with pytest.raises(ScheduleError, match="cron expression"):
        crontime.check(expression)
