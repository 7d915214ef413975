"""Row 23: workers and web requests behind PgBouncer in transaction pooling mode.

A session advisory lock behind transaction pooling stays on a server connection
after its worker died, or leaves a live worker when that server connection
closes. So a worker behind a pooler holds none: it detects the pooler at start
(pooled mode) and only its heartbeat lease counts. Here real ``flush_queue``
workers drain ledger jobs through a real PgBouncer while the test SIGKILLs
workers and terminates the server connections that carried their heartbeats,
and dashboard pages are requested through the same PgBouncer.
"""

from __future__ import annotations

import collections
import random
import time

import pytest
from django.db import connection
from django.test import Client

from async_queue import Job, JobError
from async_queue.models import Worker
from async_queue.sql import database_now
from tests.conftest import WorkerProcess, login, make_user, wait_for
from tests.faults.conftest import report, size
from tests.faults.pgbouncer import PgBouncer, pgbouncer  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
FOREVER = ("--forever", "--sleep", "0.1", "-v", "0")
WORKER_TIMEOUT = 2.0
# The heartbeat's UPDATE, as pg_stat_activity shows the last statement of a backend.
HEARTBEAT_SQL = '%UPDATE "async_queue_worker" SET "heartbeat_at"%'


def pid_of(worker_name: str) -> int:
    return int(worker_name.split(":")[-2])


def terminate_heartbeat_backends(within: float = 3.0) -> int:
    """Terminate idle server connections whose last statement was a heartbeat.

    PgBouncer hands the most recently used server connection out first, so a job's
    statements soon overwrite what a heartbeat's connection last ran: look again until
    one is caught idle right after its heartbeat, for at most ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        terminated = _terminate_heartbeat_backends()
        if terminated or time.monotonic() > deadline:
            return terminated
        time.sleep(0.02)


def _terminate_heartbeat_backends() -> int:
    with connection.cursor() as cursor:
        # Two statements: in one, PostgreSQL may call pg_terminate_backend() before the
        # other conditions have ruled a backend out.
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'idle' AND query LIKE %s",
            [HEARTBEAT_SQL],
        )
        pids = [pid for (pid,) in cursor.fetchall()]
        if not pids:
            return 0
        cursor.execute("SELECT count(*) FROM unnest(%s) AS p WHERE pg_terminate_backend(p)", [pids])
        return cursor.fetchone()[0]


def session_liveness_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return cursor.fetchone()[0]


def browse(client: Client, bouncer: PgBouncer, ids: list[int], rng: random.Random) -> list[str]:
    """The dashboard's list, a job page and the metrics, through PgBouncer; the failures."""
    failures = []
    with bouncer.routed():
        connection.ensure_connection()
        raw = connection.connection  # the psycopg connection, now to PgBouncer
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            assert cursor.fetchone()[0] != raw.info.backend_pid, "not through PgBouncer"
        for path in ("/jobs/", f"/jobs/{rng.choice(ids)}/", "/jobs/metrics/"):
            try:
                response = client.get(path)
            except Exception as exc:  # a failure to count, not to stop the test on
                failures.append(f"{path}: {exc!r}")
                continue
            if response.status_code != 200:
                failures.append(f"{path}: {response.status_code}")
    return failures


def test_workers_behind_pgbouncer_lose_and_double_no_job(start_worker, ledger, pgbouncer):  # noqa: F811
    """Row 23: kill -9 and terminated heartbeat connections behind PgBouncer; exact ledger."""
    jobs = size(300, 3000)
    interval = size(1.0, 2.0)
    env = {
        **ledger.env,
        **pgbouncer.env,
        "ASYNC_QUEUE_TEST_SETTINGS": f'{{"WORKER_TIMEOUT": {WORKER_TIMEOUT}}}',
    }
    ids = ledger.schedule(jobs, kwargs={"progress": True, "pause": 0.05})
    workers = [start_worker(*FOREVER, env=env) for _ in range(3)]
    client = login(Client(), make_user("staff", superuser=True))
    rng = random.Random(23)
    killed: dict[int, float] = {}  # pid -> database time of the kill
    terminated = requests = 0
    web_failures: list[str] = []
    started = time.monotonic()
    wait_for(lambda: Worker.objects.filter(mode="pooled").count() == 3, timeout=20)
    round_ = 0
    while not ledger.done(ids):
        assert time.monotonic() - started < size(120, 900), "the jobs did not finish"
        time.sleep(interval)
        # The web first: a request that got a server connection the very moment it was
        # terminated would fail like under any dying server connection, which is not
        # what this row is about.
        web_failures += browse(client, pgbouncer, ids, rng)
        requests += 3
        round_ += 1
        if round_ % 2:
            terminated += terminate_heartbeat_backends()
        else:
            index = rng.randrange(len(workers))
            victim: WorkerProcess = workers[index]
            killed[victim.process.pid] = database_now("default")
            victim.kill()
            workers[index] = start_worker(*FOREVER, env=env)
    elapsed = time.monotonic() - started
    # No liveness lock is held behind the pooler, so none can leak there.
    assert session_liveness_locks() == 0
    assert not Job.objects.filter(pk__in=ids, status="running").exists()
    assert all(worker.process.poll() is None for worker in workers), "a worker died"

    ledger.assert_exactly_once(ids)
    # A body ran more than once only when a killed worker had started it, or when an
    # attempt failed on record (a job transaction that got a server connection just
    # as the test terminated it): never because a live worker's job was taken.
    live_runs = collections.Counter(
        int(job) for _, job, pid, *_ in ledger.lines("run") if int(pid) not in killed
    )
    failed = collections.Counter(
        JobError.objects.filter(job__in=ids)
        .exclude(message__contains="was lost")
        .values_list("job_id", flat=True)
    )
    duplicated = sum(max(count - 1 - failed[job], 0) for job, count in live_runs.items())
    assert duplicated == 0
    lost = list(JobError.objects.filter(job__in=ids, message__contains="was lost"))
    false_lost = [error for error in lost if pid_of(error.worker) not in killed]
    assert false_lost == [], [(e.job_id, e.worker) for e in false_lost]
    lost_rows = Worker.objects.filter(lost_at__isnull=False)
    assert all(pid_of(row.name) in killed for row in lost_rows)
    assert set(Worker.objects.values_list("mode", flat=True)) == {"pooled"}
    # Every killed worker's job came back after about WORKER_TIMEOUT, not 12 minutes.
    recovered_in = [
        (error.created_at - killed[pid_of(error.worker)]).total_seconds() for error in lost
    ]
    assert recovered_in, "no kill landed while a job ran"
    assert max(recovered_in) <= WORKER_TIMEOUT + 2.5
    assert min(recovered_in) >= WORKER_TIMEOUT - 0.5  # the lease, not a lock, told
    assert web_failures == []
    assert len(killed) >= 2
    assert terminated >= 1
    executions = ledger.executions()
    report(
        23,
        "PgBouncer transaction pooling",
        jobs=jobs,
        workers=3,
        kills=len(killed),
        heartbeat_connections_terminated=terminated,
        worker_timeout_s=WORKER_TIMEOUT,
        recovered_in_s_max=round(max(recovered_in), 2),
        recovered_in_s_min=round(min(recovered_in), 2),
        lost_attempts=len(lost),
        failed_attempts=sum(failed.values()),
        false_lost=len(false_lost),
        rolled_back_executions=sum(executions.values()) - jobs,
        duplicated_bodies=duplicated,
        web_requests=requests,
        web_failures=len(web_failures),
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
        seconds=round(elapsed, 1),
    )
