"""Worker rows and their heartbeat lease (``async_queue.liveness``), and who is found dead."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
from django.db.models.functions import Now
from django.test import override_settings

from async_queue import Job, JobError, Status, schedule, sql
from async_queue.models import Worker as WorkerRow
from async_queue.sql.postgresql import SessionLock, liveness_key
from async_queue.worker import Worker
from tests.conftest import wait_for
from tests.faults.pgbouncer import BINARY, PgBouncer
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)
postgres = pytest.mark.postgres


def row(name: str) -> WorkerRow:
    return WorkerRow.objects.get(name=name)


def age(name: str, seconds: float) -> None:
    """Make a worker's last heartbeat ``seconds`` old."""
    WorkerRow.objects.filter(name=name).update(heartbeat_at=Now() - timedelta(seconds=seconds))


def test_a_worker_registers_beats_counts_and_stops():
    schedule(tasks.echo, [1])
    schedule(tasks.fail, ["no"], max_attempts=1)
    with Worker(queues=["default"]) as worker:
        assert worker.drain() == 2
        registered = row(worker.worker_id)
        assert (registered.host, registered.pid) == (socket.gethostname(), os.getpid())
        assert (registered.queues, registered.mode) == (["default"], "direct")
        assert registered.stopped_at is registered.lost_at is None
        first = registered.heartbeat_at
        wait_for(lambda: row(worker.worker_id).heartbeat_at > first, timeout=5)
        beat = row(worker.worker_id)
        assert (beat.jobs_done, beat.failures, beat.current_job_id) == (2, 1, None)
    stopped = row(worker.worker_id)
    assert stopped.stopped_at is not None
    assert stopped.lost_at is None


@postgres  # on SQLite the running job holds the write lock: the row lags until it ends
def test_the_heartbeat_reports_the_current_job():
    job = schedule(tasks.sleep, [1.0])
    with Worker() as worker:

        def drain() -> None:
            try:
                worker.drain(max_jobs=1)
            finally:
                connections.close_all()  # this thread's own

        runner = threading.Thread(target=drain)
        worker._alive()
        runner.start()
        try:
            wait_for(lambda: row(worker.worker_id).current_job_id == job.pk, timeout=5)
        finally:
            runner.join()
    assert row(worker.worker_id).current_job_id is None


def test_a_worker_declared_lost_stops_using_its_name_and_registers_again():
    with Worker() as worker:
        worker._alive()
        old = worker.worker_id
        WorkerRow.objects.filter(name=old).update(lost_at=Now())
        wait_for(lambda: worker.liveness.lost, timeout=5)
        job = schedule(tasks.echo, [1])
        assert worker.drain() == 1
        new = worker.worker_id
    assert new != old
    assert Job.objects.get(pk=job.pk).worker == new
    assert row(old).lost_at is not None
    assert row(old).stopped_at is None  # lost, not a clean exit
    assert row(new).stopped_at is not None


def test_a_worker_id_in_use_is_refused():
    with Worker(worker_id="twin") as first:
        first._alive()
        with pytest.raises(RuntimeError, match="Worker id 'twin' is already in use"):
            Worker(worker_id="twin")._alive()


def test_dead_workers_of_no_row_or_an_ended_row():
    WorkerRow.objects.create(name="stopped", stopped_at=Now())
    WorkerRow.objects.create(name="lost", lost_at=Now())
    WorkerRow.objects.create(name="fresh")
    # SQLite's liveness; on PostgreSQL a fresh heartbeat (its lock lives on a connection).
    alive = sql.dialect("default").liveness_lock("fresh")
    alive.acquire()
    try:
        assert sql.dialect("default").dead_workers({"stopped", "lost", "fresh", "gone"}) == {
            "stopped",
            "lost",
            "gone",
        }
    finally:
        alive.release()
    assert row("fresh").lost_at is None


@postgres
def test_direct_workers_are_dead_when_their_lock_is_free_and_their_heartbeat_late():
    holder = sql.second_connection("default")
    try:
        for name in ("locked-late", "free-fresh", "free-late"):
            WorkerRow.objects.create(name=name, mode="direct")
        assert SessionLock("locked-late").hold_on(holder)
        assert SessionLock("no-row-locked").hold_on(holder)
        age("locked-late", 60)
        age("free-late", 60)
        dead = sql.dialect("default").dead_workers(
            {"locked-late", "free-fresh", "free-late", "no-row-locked", "no-row"}
        )
        assert dead == {"free-late", "no-row"}
        assert set(
            WorkerRow.objects.filter(lost_at__isnull=False).values_list("name", flat=True)
        ) == {"free-late"}
        # Another rescuer finds it lost already: its mark stays the first one's.
        marked = row("free-late").lost_at
        assert "free-late" in sql.dialect("default").dead_workers({"free-late"})
        assert row("free-late").lost_at == marked
    finally:
        holder.close()


@postgres
def test_pooled_workers_are_dead_after_worker_timeout_whatever_the_locks():
    for name in ("pooled-fresh", "pooled-late"):
        WorkerRow.objects.create(name=name, mode="pooled")
    age("pooled-fresh", 4)  # older than the direct grace, younger than the timeout
    age("pooled-late", 6)
    with override_settings(ASYNC_QUEUE={"HEARTBEAT_INTERVAL": 0.2, "WORKER_TIMEOUT": 5}):
        assert sql.dialect("default").dead_workers({"pooled-fresh", "pooled-late"}) == {
            "pooled-late"
        }


@postgres
def test_a_terminated_liveness_connection_takes_its_lock_again_and_no_job_is_rescued(
    start_worker,
):
    job = schedule(tasks.sleep, [3])
    worker = start_worker("--forever", "--sleep", "0.1")
    wait_for(lambda: Job.objects.filter(pk=job.pk, status=Status.RUNNING).exists(), timeout=20)
    name = Job.objects.get(pk=job.pk).worker

    def lock_holder() -> int | None:
        key = tuple(k & 0xFFFFFFFF for k in liveness_key(name))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
                "AND granted AND classid::bigint = %s AND objid::bigint = %s",
                list(key),
            )
            found = cursor.fetchone()
        return None if found is None else found[0]

    before = lock_holder()
    assert before is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [before])
    rescuer = Worker(worker_id="rescuer")
    recovered = 0
    while Job.objects.get(pk=job.pk).status == Status.RUNNING:
        recovered += rescuer.recover()
        time.sleep(0.05)
    again = lock_holder()
    assert again is not None
    assert again != before
    assert recovered == 0
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.SUCCEEDED, 1)
    assert not JobError.objects.exists()
    assert row(name).lost_at is None
    worker.kill()


@postgres
def test_a_second_connection_is_outside_djangos_pool():
    settings = connections["default"].settings_dict
    options = settings.setdefault("OPTIONS", {})
    options["pool"] = {"max_size": 1}
    try:
        clone = sql.second_connection("default", "default__side")
        assert "pool" not in clone.settings_dict["OPTIONS"]
        assert clone.pool is None
        assert clone.alias == "default__side"
        assert settings["OPTIONS"]["pool"] == {"max_size": 1}  # the alias keeps its pool
    finally:
        del options["pool"]


@postgres
def test_a_polling_waiter_never_listens(django_assert_num_queries):
    waiter = sql.dialect("default").waiter(polling=True)
    with django_assert_num_queries(0):
        assert waiter.wait(0.05) is False


@postgres
@pytest.mark.skipif(BINARY is None, reason="pgbouncer is not installed")
@pytest.mark.parametrize(("pool_mode", "found"), [("transaction", True), ("session", True)])
def test_a_pooler_is_detected(pool_mode, found):
    direct = sql.second_connection("default")
    try:
        assert sql.dialect("default").pooler(direct) == ""
    finally:
        direct.close()
    bouncer = PgBouncer(pool_mode=pool_mode)
    try:
        with bouncer.routed():
            pooled = sql.second_connection("default")
            try:
                assert bool(sql.dialect("default").pooler(pooled)) is found
            finally:
                pooled.close()
    finally:
        bouncer.stop()


@postgres
@pytest.mark.skipif(BINARY is None, reason="pgbouncer is not installed")
def test_statement_pooling_is_refused_with_a_clear_error():
    bouncer = PgBouncer(pool_mode="statement")
    try:
        with bouncer.routed():
            pooled = sql.second_connection("default")
            try:
                with pytest.raises(ImproperlyConfigured, match="statement pooling mode"):
                    sql.dialect("default").pooler(pooled)
            finally:
                pooled.close()
    finally:
        bouncer.stop()


def test_a_killed_workers_row_is_marked_lost_by_the_one_that_recovers_its_job(start_worker):
    job = schedule(tasks.sleep, [30], max_attempts=2)
    doomed = start_worker("--forever", "--sleep", "0.1")
    wait_for(lambda: Job.objects.filter(pk=job.pk, status=Status.RUNNING).exists(), timeout=20)
    name = Job.objects.get(pk=job.pk).worker
    wait_for(lambda: WorkerRow.objects.filter(name=name).exists(), timeout=5)
    doomed.kill()
    rescuer = Worker(worker_id="rescuer")
    wait_for(lambda: rescuer.recover() == 1, timeout=10)
    lost = row(name)
    assert lost.lost_at is not None
    assert lost.stopped_at is None
    assert lost.recovered == 1
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED
    assert rescuer.recover() == 0  # nothing left to recover
