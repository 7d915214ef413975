"""Row 24: workers whose database settings use Django's own pool (``OPTIONS["pool"]``).

Django's pool hands a connection back after an error, with whatever session
state it had, and a pool of one is used up by the worker's own connection. So
the liveness lock, the heartbeat and the progress writes use connections of
their own outside the pool. Real workers with a pool (one of them of size 1) run
timed progress writes, lose their job connection to ``pg_terminate_backend`` in
the middle of a job, and are killed with SIGKILL.
"""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection

from async_queue import Job, JobError, schedule
from async_queue.models import Worker
from tests.conftest import WorkerProcess, wait_for
from tests.faultapp.models import LedgerCounter
from tests.faults.conftest import Ledger, report, size

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
pytest.importorskip("psycopg_pool", reason="the test extra installs psycopg-pool")

FOREVER = ("--forever", "--sleep", "0.1", "-v", "0")
POOLS = {
    # A pool of one, which the worker's own connection holds while a job runs; its
    # timeout is short so that a write waiting for it would show at once.
    "single": {"min_size": 1, "max_size": 1, "timeout": 5},
    "pool": {"min_size": 2, "max_size": 4},
}
SLEEP_SQL = "SELECT pg_sleep(%"


def pool_env(ledger: Ledger, pool: dict) -> dict[str, str]:
    return {
        **ledger.env,
        "ASYNC_QUEUE_TEST_DB_OPTIONS": json.dumps({"pool": pool}),
        "ASYNC_QUEUE_TEST_SETTINGS": json.dumps({"PROGRESS_INTERVAL": 0}),
    }


def sleeping_backend() -> int | None:
    """The backend of a job's connection that is inside ``pg_sleep``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE %s",
            [SLEEP_SQL + "%"],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def terminate(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        return cursor.fetchone()[0]


def sleeper(ledger: Ledger, queue: str, seconds: float) -> Job:
    return schedule(
        "tests.faultapp.jobs_poolers.sleep_in_database",
        kwargs={"counter": ledger.counter, "seconds": seconds},
        queue=queue,
        max_attempts=2,
    )


def test_workers_with_djangos_pool_survive_errors_and_never_wait_for_it(start_worker, ledger):
    """Row 24: progress never waits for the pool, a lost job connection is an attempt."""
    LedgerCounter.objects.get_or_create(name=ledger.counter)
    writes = size(10, 50)
    per_worker = size(3, 20)
    workers: dict[str, WorkerProcess] = {
        name: start_worker(*FOREVER, "--queue", name, env=pool_env(ledger, pool))
        for name, pool in POOLS.items()
    }
    started = time.monotonic()

    # 1. Progress writes, timed inside the job bodies.
    progress_jobs = [
        schedule(
            "tests.faultapp.jobs_poolers.timed_progress",
            kwargs={"counter": ledger.counter, "writes": writes},
            queue=name,
        ).pk
        for name in POOLS
        for _ in range(per_worker)
    ]
    wait_for(lambda: ledger.done(progress_jobs), timeout=60)
    timings = [float(line[3]) for line in ledger.lines("progress")]
    assert len(timings) == writes * len(progress_jobs)
    # A write that waited for the pool would take its 5 s timeout; half of it is a stall.
    assert max(timings) < 2.5, max(timings)
    modes = set(Worker.objects.filter(stopped_at__isnull=True).values_list("mode", flat=True))
    assert modes == {"direct"}  # Django's pool is not a pooler between them and the server

    # 2. The job's connection is terminated mid-job: a failed attempt, not a dead worker.
    terminated = []
    for name in POOLS:
        job = sleeper(ledger, name, seconds=30)
        wait_for(lambda: sleeping_backend() is not None, timeout=20)
        assert terminate(sleeping_backend())
        terminated.append(job.pk)
        wait_for(lambda job=job: ledger.done([job.pk]), timeout=20)
    for pk in terminated:
        job = Job.objects.get(pk=pk)
        assert job.attempts == 2
        (error,) = JobError.objects.filter(job=job)
        assert error.exception == "django.db.utils.OperationalError", error.message
    after = ledger.schedule(size(10, 100), queue="single") + ledger.schedule(
        size(10, 100), queue="pool"
    )
    wait_for(lambda: ledger.done(after), timeout=60)
    for worker in workers.values():
        assert worker.process.poll() is None, worker.stderr
        assert "already in use" not in worker.stderr

    # 3. SIGKILL mid-job: the other worker recovers the job within seconds.
    doomed = sleeper(ledger, "single", seconds=30)
    wait_for(lambda: sleeping_backend() is not None, timeout=20)
    workers["single"].kill()
    killed_at = time.monotonic()
    wait_for(lambda: Job.objects.get(pk=doomed.pk).status == "queued", timeout=20)
    recovered_in = time.monotonic() - killed_at
    assert recovered_in < 5.0
    assert "was lost" in JobError.objects.get(job=doomed).message
    replacement = start_worker(*FOREVER, "--queue", "single", env=pool_env(ledger, POOLS["single"]))
    wait_for(lambda: ledger.done([doomed.pk]), timeout=30)
    assert replacement.process.poll() is None

    ids = progress_jobs + terminated + after + [doomed.pk]
    ledger.assert_exactly_once(ids)
    report(
        24,
        "Django's connection pool",
        pools=list(POOLS.values()),
        progress_writes=len(timings),
        progress_write_ms_max=round(max(timings) * 1000, 1),
        progress_write_ms_mean=round(sum(timings) / len(timings) * 1000, 2),
        job_connections_terminated=len(terminated),
        workers_died=0,
        kill_recovered_in_s=round(recovered_in, 2),
        jobs=len(ids),
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
        seconds=round(time.monotonic() - started, 1),
    )
