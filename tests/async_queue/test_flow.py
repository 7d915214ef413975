"""Flow control: concurrency limits and rates, per key and per queue, in the claim."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.db import connection, connections
from django.db.models import F
from django.test import override_settings

from async_queue import Job, ScheduleError, Status, job, schedule
from async_queue.limits import Rate, next_window, parse_rate, slot_groups
from async_queue.maintenance import purge
from async_queue.models import RateCount
from async_queue.sql import dialect
from async_queue.sql.base import Dialect
from async_queue.states import Result
from async_queue.worker import Worker
from tests.faults.conftest import on_postgres
from tests.testapp import flow_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def claim(**options) -> Job | None:
    return dialect("default").claim("w", **options)


def mark_running(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(status=Status.RUNNING, worker="elsewhere")


# -- declarations ---------------------------------------------------------------------


def test_keys_are_made_from_the_arguments_at_schedule_time():
    tenant = schedule(flow_jobs.one_per_tenant, kwargs={"tenant": 7})
    assert (tenant.concurrency_key, tenant.concurrency) == ("tenant:7", 1)
    account = schedule(flow_jobs.two_per_account, [42], {"note": "x"})
    assert (account.concurrency_key, account.concurrency) == ("account:42", 2)
    default = schedule(flow_jobs.one_at_a_time)
    assert default.concurrency_key == "tests.testapp.flow_jobs.one_at_a_time"
    rated = schedule(flow_jobs.hourly_per_feed, ["news"])
    assert (rated.rate_key, rated.rate_limit, rated.rate_period) == ("feed:news", 1, 3600.0)
    plain = schedule("tests.testapp.tasks.increment")
    assert (plain.concurrency_key, plain.rate_key) == (None, None)


def test_a_key_that_cannot_be_made_is_refused_at_schedule_time():
    with pytest.raises(ScheduleError, match="concurrency_key could not be made"):
        schedule(flow_jobs.one_per_tenant, kwargs={"other": 1})
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/m", Rate(100, 60)),
        ("5/s", Rate(5, 1)),
        ("20/10s", Rate(20, 10)),
        ("1/day", Rate(1, 86400)),
    ],
)
def test_rates_parse(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["100", "0/s", "5/x", "-1/s", "5/0s", 5])
def test_bad_rates_are_refused(text):
    with pytest.raises(ValueError, match="rate="):
        parse_rate(text)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be a whole number"),
        ({"concurrency": True}, "concurrency must be a whole number"),
        ({"concurrency_key": "k"}, "concurrency_key needs concurrency"),
        ({"rate_key": "k"}, "rate_key needs rate"),
        ({"concurrency": 2, "concurrency_key": 3}, "concurrency_key must be a template"),
        ({"rate": "often"}, "is not a rate"),
    ],
)
def test_bad_declarations_are_refused(options, message):
    with pytest.raises(TypeError, match=message):
        job(**options)


# -- concurrency in the claim -----------------------------------------------------------


def test_the_claim_skips_a_key_at_its_limit_and_takes_other_keys():
    first = schedule(flow_jobs.one_per_tenant, kwargs={"tenant": 1})
    second = schedule(flow_jobs.one_per_tenant, kwargs={"tenant": 1})
    other = schedule(flow_jobs.one_per_tenant, kwargs={"tenant": 2})
    assert claim().pk == first.pk
    assert claim().pk == other.pk  # tenant 1 is at its limit of 1
    assert claim() is None
    Job.objects.filter(pk=first.pk).update(status=Status.SUCCEEDED)
    assert claim().pk == second.pk


def test_a_limit_of_two_lets_two_run():
    jobs = [schedule(flow_jobs.two_per_account, [5]) for _ in range(3)]
    assert [claim().pk, claim().pk] == [jobs[0].pk, jobs[1].pk]
    assert claim() is None


@override_settings(ASYNC_QUEUE={"QUEUES": {"throttled": {"concurrency": 1}}})
def test_a_queue_limit_holds_across_keys_and_leaves_other_queues_alone():
    first = schedule(flow_jobs.in_throttled_queue, [1])
    schedule(flow_jobs.in_throttled_queue, [2])
    elsewhere = schedule("tests.testapp.tasks.increment")
    assert claim().pk == first.pk
    assert claim().pk == elsewhere.pk
    assert claim() is None


def test_an_explicit_run_ignores_the_claims_count():
    running = schedule(flow_jobs.one_per_tenant, kwargs={"tenant": 3})
    mark_running(running)
    waiting = schedule(flow_jobs.one_per_tenant, kwargs={"tenant": 3})
    assert claim() is None
    assert waiting.execute().status == Result.SUCCEEDED


def test_slot_keys_per_limit():
    groups = slot_groups("tenant:1", 3, "q", [])
    assert [len(group) for group in groups] == [3]
    assert len({key for group in groups for key in group}) == 3
    assert slot_groups(None, None, "q", []) == []


@pytest.mark.skipif(not on_postgres(), reason="SQLite runs one job at a time: no slot to take")
def test_a_job_that_finds_every_slot_taken_waits_without_using_an_attempt():
    job = schedule(flow_jobs.two_per_account, [9])
    (group,) = slot_groups(job.concurrency_key, job.concurrency, job.queue, [])
    # Another session holds both slots, as two running jobs of the key would.
    other = connections.create_connection("default")
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            for key in group:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
        outcome = job.execute()
        assert outcome.status == Result.DEFERRED
        assert (job.status, job.attempts) == (Status.QUEUED, 0)
        assert job.run_after <= dialect("default").database_now()  # due again at once
        other.rollback()  # the slots free
        assert job.execute().status == Result.SUCCEEDED
    finally:
        other.close()


@pytest.mark.skipif(not on_postgres(), reason="slots are PostgreSQL advisory locks")
def test_slots_are_taken_one_per_group_and_released_with_the_transaction():
    sql = dialect("default")
    groups = [[101, 102], [201]]
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        assert sql.take_slots(groups)
        cursor.execute(
            "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        held = cursor.fetchall()
        cursor.execute("ROLLBACK")
    assert len(held) == 2  # 101 (the first free of its group) and 201, not 102


# -- rates ---------------------------------------------------------------------------


def test_a_rate_lets_its_limit_of_starts_through_per_window():
    jobs = [schedule(flow_jobs.twice_an_hour, [n]) for n in range(3)]
    assert claim().pk == jobs[0].pk
    assert claim().pk == jobs[1].pk
    assert claim() is None  # the third waits for the next hour's window
    count = RateCount.objects.get()
    assert (count.key, count.starts) == ("tests.testapp.flow_jobs.twice_an_hour", 2)
    RateCount.objects.update(window=0)  # as if the window had passed
    assert claim().pk == jobs[2].pk


def test_rate_keys_are_separate():
    news = schedule(flow_jobs.hourly_per_feed, ["news"])
    schedule(flow_jobs.hourly_per_feed, ["news"])
    sport = schedule(flow_jobs.hourly_per_feed, ["sport"])
    assert [claim().pk, claim().pk, claim()] == [news.pk, sport.pk, None]


@override_settings(ASYNC_QUEUE={"QUEUES": {"throttled": {"rate": "1/h"}}})
def test_a_queue_rate_counts_its_jobs_and_a_jobs_own_rate_replaces_it():
    first = schedule(flow_jobs.in_throttled_queue, [1])
    schedule(flow_jobs.in_throttled_queue, [2])
    own = schedule(flow_jobs.twice_an_hour, [3], queue="throttled")
    assert claim().pk == first.pk
    assert claim().pk == own.pk  # its own rate, not the queue's
    assert claim() is None
    assert RateCount.objects.get(key="queue:throttled").starts == 1


def test_a_worker_wakes_when_a_rate_window_opens():
    assert next_window(set(), 10.0) is None
    assert next_window({1.0}, 10.25) == pytest.approx(0.75)
    assert next_window({60.0, 3600.0}, 3599.5) == pytest.approx(0.5)
    with Worker() as worker:
        schedule(flow_jobs.twice_an_hour)
        worker.drain()
        assert 3600.0 in worker.rate_periods


@override_settings(ASYNC_QUEUE={"QUEUES": {"a": {"concurrency": 0}, "b": {"rate": "fast"}, "c": 3}})
def test_bad_queue_settings_are_reported_by_the_checks():
    messages = [m for m in run_checks() if m.id == "async_queue.E045"]
    assert len(messages) == 3


def test_a_limited_job_adds_at_most_one_statement_to_the_claim(django_assert_num_queries):
    schedule(flow_jobs.twice_an_hour)
    schedule(flow_jobs.one_per_tenant, kwargs={"tenant": 1})
    schedule("tests.testapp.tasks.increment")
    # The rate's count: PostgreSQL's conditional upsert; SQLite's trigger, in the claim.
    with django_assert_num_queries(2 if on_postgres() else 1):
        assert claim().rate_key is not None
    with django_assert_num_queries(1):  # a concurrency limit is a filter of the claim
        assert claim().concurrency_key == "tenant:1"
    with django_assert_num_queries(1):
        assert claim().name == "tests.testapp.tasks.increment"


@pytest.mark.skipif(not on_postgres(), reason="SQLite's claims are serialized by its writer")
def test_a_claim_that_loses_the_windows_last_start_gives_the_job_back(monkeypatch):
    first, second = (schedule(flow_jobs.twice_an_hour, [n]) for n in (1, 2))
    assert claim().pk == first.pk
    plain_claim = Dialect.claim

    def racing(self, *args, **kwargs):
        job = plain_claim(self, *args, **kwargs)
        if job is not None:  # another worker counts the window's last start meanwhile
            RateCount.objects.update(starts=F("starts") + 1)
        return job

    monkeypatch.setattr(Dialect, "claim", racing)
    assert claim() is None
    second.refresh_from_db()
    assert (second.status, second.attempts) == (Status.QUEUED, 0)
    assert second.run_after > dialect("default").database_now()  # the next window
    assert RateCount.objects.get().starts == 2  # never more than the limit


def test_purge_deletes_the_counts_of_ended_windows():
    schedule(flow_jobs.twice_an_hour)
    assert claim() is not None
    RateCount.objects.create(key="old", window=1, starts=3, period=60.0)
    purge(timedelta(days=1))
    assert list(RateCount.objects.values_list("key", flat=True)) == [
        "tests.testapp.flow_jobs.twice_an_hour"
    ]
