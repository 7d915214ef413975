"""Row 3: a job that SIGKILLs its own worker ends failed after max_attempts; others succeed."""

from __future__ import annotations

import signal
import time

import pytest

from async_queue import Job, JobError, Status, schedule
from tests.conftest import wait_for
from tests.faults.conftest import report, size

pytestmark = pytest.mark.django_db(transaction=True)
# A supervised pool: every worker the poison pill kills is started again.
POOL = ("--forever", "--processes", "2", "--sleep", "0.1", "-v", "0")


def test_poison_pill_fails_after_three_lost_workers_and_every_other_job_succeeds(
    start_worker, ledger
):
    """Row 3: the attempt is counted in the committed claim, so the pill cannot loop forever."""
    jobs = size(100, 1000)
    ids = ledger.schedule(jobs // 2)
    poison = schedule("tests.faultapp.jobs.kill_own_worker", max_attempts=3, on_commit=False)
    ids += ledger.schedule(jobs - jobs // 2)
    started = time.monotonic()
    pool = start_worker(*POOL, env=ledger.env)

    def settled() -> bool:
        poison.refresh_from_db(fields=["status"])
        return poison.status == Status.FAILED and ledger.done(ids)

    wait_for(settled, timeout=size(120, 600))
    elapsed = time.monotonic() - started

    poison.refresh_from_db()
    assert poison.attempts == 3
    assert "was lost" in poison.last_error
    errors = list(JobError.objects.filter(job=poison).order_by("attempt"))
    assert [error.attempt for error in errors] == [1, 2, 3]
    assert all("was lost while running this job" in error.message for error in errors)
    # The body started exactly three times: no attempt ran uncounted.
    pills = [row for row in ledger.lines("poison") if int(row[1]) == poison.pk]
    assert len(pills) == 3
    assert len({row[2] for row in pills}) == 3  # three different worker processes died
    ledger.assert_exactly_once(ids)
    assert not Job.objects.filter(pk__in=ids, attempts__gt=1).exists()
    assert not JobError.objects.filter(job__in=ids).exists()
    # The pool outlived the pill and stops cleanly.
    pool.send_signal(signal.SIGTERM)
    assert pool.wait(timeout=30) == 0, pool.stderr
    report(
        3,
        "poison pill",
        jobs=jobs,
        poison_attempts=poison.attempts,
        poison_status=poison.status,
        poison_error=poison.last_error,
        workers_killed=len(pills),
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
        seconds=round(elapsed, 1),
    )
