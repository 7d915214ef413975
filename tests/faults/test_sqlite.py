"""Row 13: SQLite, a web process and several workers on one database file.

SQLite has one writer at a time. Workers begin each job with ``BEGIN IMMEDIATE``
(the job holds the write lock for its whole run, so its body never meets
"database is locked" halfway), progress goes to a side database, and every
other writer waits for the lock up to the busy timeout. The README documents no
limit on the number of workers ("several workers on SQLite are safe ... their
jobs run one at a time") and no system check refuses more: more workers than
cores work too, which the second test proves rather than a fail-fast message.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field

import pytest
from django.db import OperationalError, transaction
from django.db.models import F
from django.test import Client

from async_queue import Job, JobError, Status, schedule
from tests.conftest import WorkerProcess, login, make_user, wait_for
from tests.faultapp.models import LedgerCounter
from tests.faults.conftest import Ledger, on_postgres, report, size

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        on_postgres(), reason="SQLite's single writer; PostgreSQL runs workers in parallel"
    ),
]
FOREVER = ("--forever", "--sleep", "0.1", "-v", "0")
HTMX = {"HTTP_HX_REQUEST": "true"}


@dataclass
class WebProcess:
    """This test process acting as the web: dashboard polls and writes, as requests would."""

    client: Client
    ledger: Ledger
    requests: int = 0
    progress_seen: int = 0
    writes: int = 0
    scheduled: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    slowest_write: float = 0.0

    def tick(self, ids: list[int]) -> None:
        self.get("/jobs/")
        running = Job.objects.filter(pk__in=ids, status=Status.RUNNING).first()
        if running is not None:
            self.poll_live(running.pk)
        started = time.monotonic()
        try:
            # A web edit and a job scheduled by a request, each in its own transaction.
            LedgerCounter.objects.filter(name="web").update(value=F("value") + 1)
            with transaction.atomic():
                job = schedule("tests.faultapp.jobs.ledger", kwargs={"progress": True})
            self.scheduled.append(job.pk)
            self.writes += 2
        except OperationalError as exc:
            self.errors.append(str(exc))
        self.slowest_write = max(self.slowest_write, time.monotonic() - started)

    def poll_live(self, pk: int) -> None:
        """Poll a job's live panel, as the job page does; count it if it showed progress."""
        self.progress_seen += "counting" in self.get(f"/jobs/{pk}/live/", **HTMX)

    def get(self, path: str, **headers: str) -> str:
        response = self.client.get(path, **headers)
        self.requests += 1
        # 286: the job ended between the query and the request (htmx stops polling).
        assert response.status_code in (200, 286), (path, response.status_code)
        return response.content.decode()


def drain_with_web_traffic(
    start_worker, ledger: Ledger, client: Client, jobs: int, workers: int
) -> tuple[list[int], WebProcess, list[WorkerProcess], float]:
    """Workers drain ``jobs`` ledger jobs (with progress) while the web polls and writes."""
    login(client, make_user("web", superuser=True))
    LedgerCounter.objects.create(name="web")
    # One slow job runs first, so the web surely polls a job that is mid-way.
    ids = ledger.schedule(1, kwargs={"progress": True, "pause": 2.0}, priority=10)
    ids += ledger.schedule(jobs - 1, kwargs={"progress": True, "pause": 0.01})
    web = WebProcess(client, ledger)
    started = time.monotonic()
    processes = [start_worker(*FOREVER, env=ledger.env) for _ in range(workers)]
    first_running = Job.objects.filter(pk=ids[0], status=Status.RUNNING)
    wait_for(first_running.exists)
    # Its claim commits before its body reports progress: poll, as the job page does, until
    # the progress shows (the body then sleeps 2 s) or the job has ended.
    while not web.progress_seen and first_running.exists():
        web.poll_live(ids[0])
        time.sleep(0.05)
    while not ledger.done(ids + web.scheduled):
        assert time.monotonic() - started < size(120, 600), "the jobs did not finish"
        if not ledger.done(ids):
            web.tick(ids)
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.wait() == 0, process.stderr
    return ids + web.scheduled, web, processes, elapsed


def assert_no_lock_error_reached_a_job(ids: list[int], processes: list[WorkerProcess]) -> None:
    assert not JobError.objects.filter(job__in=ids).exists(), list(
        JobError.objects.values_list("message", flat=True)[:5]
    )
    assert not Job.objects.filter(pk__in=ids, attempts__gt=1).exists()
    for process in processes:
        assert "database is locked" not in process.stderr, process.stderr


def test_a_web_process_and_workers_drain_ledger_jobs_with_progress(start_worker, ledger, client):
    """Row 13: exact counter, live progress seen by the web, no "database is locked"."""
    workers = 4
    ids, web, processes, elapsed = drain_with_web_traffic(
        start_worker, ledger, client, size(200, 2000), workers
    )
    ledger.assert_exactly_once(ids)
    assert_no_lock_error_reached_a_job(ids, processes)
    assert web.errors == []
    assert LedgerCounter.objects.get(name="web").value == web.writes // 2
    assert web.progress_seen >= 1  # the dashboard showed a running job's live progress
    report(
        13,
        "sqlite: web process and workers",
        jobs=len(ids),
        workers=workers,
        web_requests=web.requests,
        web_writes=web.writes,
        web_errors=len(web.errors),
        slowest_web_write_s=round(web.slowest_write, 2),
        live_progress_seen=web.progress_seen,
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
        seconds=round(elapsed, 1),
    )


def test_more_workers_than_cores_still_work_one_job_at_a_time(start_worker, ledger, client):
    """Row 13: nothing limits SQLite workers; many more than cores stay exact and unlocked."""
    workers = size(8, 16)
    ids, web, processes, elapsed = drain_with_web_traffic(
        start_worker, ledger, client, size(200, 2000), workers
    )
    ledger.assert_exactly_once(ids)
    assert_no_lock_error_reached_a_job(ids, processes)
    assert web.errors == []
    # Serialized by the single writer: the workers took turns, each running some jobs.
    runners = set(Job.objects.filter(pk__in=ids).values_list("worker", flat=True))
    report(
        13,
        "sqlite: more workers than cores",
        jobs=len(ids),
        workers=workers,
        workers_that_ran_jobs=len(runners),
        slowest_web_write_s=round(web.slowest_write, 2),
        web_requests=web.requests,
        web_errors=len(web.errors),
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
        seconds=round(elapsed, 1),
    )
