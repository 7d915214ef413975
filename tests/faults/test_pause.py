"""Row 32: pause and resume while real workers drain a queue.

Three ``flush_queue --forever`` processes, polling at the default ``POLL_INTERVAL``
(1 s), drain a queue of ledger jobs. Each round pauses the queue while they are
busy, holds the pause, then resumes it. Claims are read from ``Job.started_at``
against the pause's ``paused_at``, both on the database clock: after the pause no
claim may start (beyond one second the figure must be 0), the jobs running at the
pause finish, and after the resume a claim starts within a second.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

import pytest

from async_queue import Job, Pause, pause_queue, resume_queue
from async_queue.sql import database_now
from tests.conftest import wait_for
from tests.faults.conftest import on_postgres, report, size, wait_until_drained

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "bulk"
POLL_INTERVAL = 1.0  # the setting's default; the tests' settings poll faster
WORKERS = 3


def test_pause_stops_claims_within_a_second_and_resume_restarts_them(start_worker, ledger):
    ids = ledger.schedule(size(500, 4000), queue=QUEUE, kwargs={"pause": 0.01})
    for _ in range(WORKERS):
        start_worker("--forever", "--sleep", str(POLL_INTERVAL), "-v", "0", env=ledger.env)
    jobs = Job.objects.filter(queue=QUEUE)  # the ledger's, and only those
    rounds, hold = int(size(2, 5)), float(size(2, 5))
    after_pause, late, latencies, finished_while_paused = [], 0, [], 0
    for _ in range(rounds):
        since = database_now("default")
        wait_for(lambda since=since: jobs.filter(started_at__gt=since).count() >= 20, timeout=60)
        pause_queue(QUEUE, reason="row 32")
        paused_at = Pause.objects.get(value=QUEUE).paused_at
        running = list(jobs.filter(status="running").values_list("pk", flat=True))
        # Idle workers poll in step from the pause on: a hold of whole poll intervals
        # would resume just before their next poll and flatter SQLite's latency.
        time.sleep(hold + random.uniform(0, POLL_INTERVAL))
        # Running jobs are not touched: each one running at the pause has committed.
        assert set(jobs.filter(pk__in=running).values_list("status", flat=True)) <= {"succeeded"}
        finished_while_paused += len(running)
        resumed_at = database_now("default")  # just before: the latency is not understated
        resume_queue(QUEUE)
        wait_for(lambda at=resumed_at: jobs.filter(started_at__gte=at).exists(), timeout=10)
        first = min(jobs.filter(started_at__gte=resumed_at).values_list("started_at", flat=True))
        latencies.append(round((first - resumed_at).total_seconds(), 3))
        claimed = jobs.filter(started_at__gt=paused_at, started_at__lt=resumed_at)
        after_pause.append(claimed.count())
        late += claimed.filter(started_at__gt=paused_at + timedelta(seconds=1)).count()
    drained = wait_until_drained(timeout=size(120, 600))
    ledger.assert_exactly_once(ids)
    assert late == 0, after_pause
    # PostgreSQL wakes idle workers on resume (NOTIFY); SQLite's find it at their next
    # poll, so there the bound is the poll interval.
    assert max(latencies) < (1.0 if on_postgres() else POLL_INTERVAL + 0.5), latencies
    report(
        32,
        "pause and resume",
        workers=WORKERS,
        poll_interval_s=POLL_INTERVAL,
        jobs=len(ids),
        rounds=rounds,
        hold_s=hold,
        claims_after_pause=after_pause,
        claims_after_1s=late,
        running_at_pause_finished=finished_while_paused,
        resume_latency_s=latencies,
        drained_s=round(drained, 1),
    )
