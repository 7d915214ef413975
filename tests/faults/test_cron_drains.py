"""Row 12: cron-style drains started while the previous ones still run."""

from __future__ import annotations

import itertools
import time
from datetime import datetime

import pytest

from async_queue import JobError, Status, schedule
from async_queue.retries import retry_ceiling
from tests.conftest import WorkerProcess
from tests.faults.conftest import report, size

pytestmark = pytest.mark.django_db(transaction=True)
# A timestamp of the database clock may trail the one it is compared with by this much.
CLOCK_SLACK = 0.02
# Starting a drain (a Django process) on a loaded 2-core machine takes a while.
STARTUP_SLACK = 5.0


def gaps(moments: list[datetime]) -> list[float]:
    return [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(moments)]


def test_overlapping_cron_drains_exit_0_run_each_job_once_and_back_off(start_worker, ledger):
    """Row 12: every drain exits 0, ledger exactly once, a failing job follows its backoff."""
    jobs = size(200, 2000)
    interval = size(0.5, 2.0)
    attempts = size(5, 7)
    # A higher priority, so that once due it is claimed before the older backlog and the
    # gaps between its attempts measure the backoff, not the queue's length.
    failing = schedule(
        "tests.testapp.tasks.fail", max_attempts=attempts, priority=1, on_commit=False
    )
    ids = ledger.schedule(jobs, kwargs={"pause": 0.01})
    drains: list[WorkerProcess] = []
    overlap = 0
    started = time.monotonic()

    def settled() -> bool:
        failing.refresh_from_db(fields=["status"])
        return failing.status == Status.FAILED and ledger.done(ids)

    next_start = started
    while not settled():
        assert time.monotonic() - started < size(120, 600), "the queue did not drain"
        if time.monotonic() >= next_start:
            drains.append(start_worker("-v", "0", env=ledger.env))
            next_start += interval
        overlap = max(overlap, sum(drain.process.poll() is None for drain in drains))
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    for drain in drains:
        assert drain.wait(timeout=60) == 0, drain.stderr
        assert "Traceback" not in drain.stderr, drain.stderr
    assert overlap >= 2, "no two drains ever ran at once"

    ledger.assert_exactly_once(ids)
    assert set(ledger.executions().values()) == {1}  # not even a rolled-back second run

    failing.refresh_from_db()
    assert failing.attempts == attempts
    errors = list(JobError.objects.filter(job=failing).order_by("attempt"))
    assert [error.attempt for error in errors] == list(range(1, attempts + 1))
    spacing = gaps([error.created_at for error in errors])
    for attempt, gap in enumerate(spacing, start=1):
        ceiling = retry_ceiling(attempt)
        # Never before the jittered delay (c/2 at least): no hot loop ...
        assert gap >= ceiling / 2 - CLOCK_SLACK, (attempt, gap, ceiling)
        # ... and not much later than the delay plus the next drain's start.
        assert gap <= ceiling + interval + STARTUP_SLACK, (attempt, gap, ceiling)
    report(
        12,
        "overlapping cron drains",
        jobs=jobs,
        drains=len(drains),
        start_interval_s=interval,
        most_at_once=overlap,
        exit_codes=sorted({drain.process.returncode for drain in drains}),
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
        failing_attempts=failing.attempts,
        retry_gaps_s=[round(gap, 2) for gap in spacing],
        retry_ceilings_s=[retry_ceiling(n) for n in range(1, attempts)],
        seconds=round(elapsed, 1),
    )
