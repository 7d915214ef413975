"""The dialect package: one dialect per alias, the shared hot-path SQL, each database's parts."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from async_queue import Job, Status, schedule
from async_queue.sql import dialect, hinted, second_connection
from async_queue.sql.postgresql import PostgreSQL, RowStore
from async_queue.sql.sqlite import SideStore, SQLite, is_database_busy

pytestmark = pytest.mark.django_db(transaction=True)
postgres = pytest.mark.postgres
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own parts")
JOB = "tests.testapp.tasks.increment"


def test_one_dialect_per_alias_of_the_database_it_talks_to():
    chosen = dialect("default")
    assert chosen is dialect("default")
    assert chosen.vendor == connection.vendor
    assert isinstance(chosen, PostgreSQL if connection.vendor == "postgresql" else SQLite)


def test_a_database_the_queue_cannot_use_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(connections["default"], "vendor", "oracle")
    with pytest.raises(ImproperlyConfigured, match=r"PostgreSQL and SQLite, not oracle"):
        dialect("default")


def test_the_database_clock_is_aware_and_now():
    now = dialect("default").database_now()
    assert now.tzinfo is not None
    assert abs(now - timezone.now()) < timedelta(seconds=5)


def test_a_second_connection_is_its_own_and_never_pooled():
    side = second_connection("default", "default__probe")
    try:
        assert side is not connections["default"]
        assert side.alias == "default__probe"
        assert "pool" not in side.settings_dict.get("OPTIONS", {})
        with side.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone()[0] == 1
        assert "default__probe" not in connections
    finally:
        side.close()


def test_a_claim_takes_the_due_job_and_counts_its_attempt():
    due = schedule(JOB, on_commit=False)
    later = schedule(JOB, run_after=timezone.now() + timedelta(hours=1), on_commit=False)
    claimed = dialect("default").claim("claimer")
    assert claimed is not None
    assert (claimed.pk, claimed.status, claimed.attempts, claimed.worker) == (
        due.pk,
        Status.RUNNING,
        1,
        "claimer",
    )
    # Converted as the ORM converts them.
    assert (claimed.args, claimed.kwargs) == (due.args, due.kwargs)
    assert dialect("default").claim("claimer") is None  # the other one is not due
    assert dialect("default").claim("claimer", job_id=later.pk).pk == later.pk  # unless named


def test_a_claim_can_be_limited_to_queues_and_a_name_prefix():
    schedule(JOB, queue="mail", on_commit=False)
    other = schedule("tests.testapp.tasks.record", args=["x"], on_commit=False)
    sql = dialect("default")
    assert sql.claim("w", queues=["reports"]) is None
    assert sql.claim("w", prefix="tests.testapp.tasks.rec").pk == other.pk
    assert sql.claim("w", queues=["mail"]).queue == "mail"


def test_the_success_update_is_fenced_on_the_claim():
    schedule(JOB, on_commit=False)
    sql = dialect("default")
    claimed = sql.claim("owner")
    assert sql.complete(claimed, "someone-else", {"done": True}) is False
    assert Job.objects.get(pk=claimed.pk).status == Status.RUNNING
    assert sql.complete(claimed, "owner", {"done": True}, progress=(3, 3, "all")) is True
    job = Job.objects.get(pk=claimed.pk)
    assert (job.status, job.result, job.progress_current, job.progress_message) == (
        Status.SUCCEEDED,
        {"done": True},
        3,
        "all",
    )
    assert sql.complete(claimed, "owner", {"done": True}) is False  # once


def test_hints_change_the_sql_only_where_the_planner_needs_them():
    jobs = Job.objects.filter(hinted("default", True, status=Status.FAILED))
    sql = str(jobs.query)
    assert ("unlikely(" in sql) is (connection.vendor == "sqlite")
    plain = Job.objects.filter(hinted("default", None, status=Status.FAILED))
    assert "likely(" not in str(plain.query)
    schedule(JOB, on_commit=False)
    assert list(jobs) == list(Job.objects.filter(status=Status.FAILED))
    queued = Job.objects.filter(hinted("default", False, status__in=[Status.QUEUED]))
    assert queued.count() == 1


def test_each_database_writes_live_progress_where_a_job_cannot_block_it():
    store = dialect("default").progress_store()
    if connection.vendor == "postgresql":
        assert isinstance(store, RowStore)  # the job row, through a second connection
    else:
        assert isinstance(store, SideStore)  # a side database next to the main file
        assert store.path.name.endswith(".progress")


@sqlite_only
def test_sqlite_liveness_is_an_flock_that_one_process_holds():
    sql = dialect("default")
    first = sql.liveness_lock("probe-worker")
    first.acquire()
    try:
        with pytest.raises(RuntimeError, match="already in use"):
            sql.liveness_lock("probe-worker").acquire()
        assert sql.unlocked({"probe-worker", "nobody"}) == {"nobody"}
    finally:
        first.release()
    assert sql.unlocked({"probe-worker"}) == {"probe-worker"}


@sqlite_only
def test_sqlite_knows_a_busy_database_from_other_errors():
    locked = OperationalError("database is locked")
    assert is_database_busy(locked)
    wrapped = RuntimeError("while saving")
    wrapped.__cause__ = sqlite3.OperationalError("database table is locked")
    assert is_database_busy(wrapped)
    assert not is_database_busy(OperationalError("no such table: x"))


@postgres
def test_postgresql_object_locks_are_taken_in_one_statement_or_not_at_all(
    django_assert_num_queries,
):
    sql = dialect("default")
    plan = [(11, True), (12, False)]
    with transaction.atomic(), django_assert_num_queries(1):
        assert sql.take_locks(plan)
    other = second_connection("default")
    try:
        with transaction.atomic():
            assert sql.take_locks(plan)
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(11)")
                assert cursor.fetchone()[0] is False  # held until the transaction ends
    finally:
        other.close()
