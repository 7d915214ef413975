"""Row 6: jobs stuck in ``time.sleep``, in ``SELECT pg_sleep(...)`` and in a CPU loop each fail
with a timeout within 1 s of their limit, and a job waiting on the same object starts next.
"""

from __future__ import annotations

import pytest

from async_queue import Job, JobError, schedule
from tests.conftest import wait_for
from tests.faultapp.models import LedgerCounter, Slot
from tests.faults.conftest import Ledger, report, size

pytestmark = pytest.mark.django_db(transaction=True)
FOREVER = ("--forever", "--sleep", "0.05", "-v", "0")
STUCK = "tests.faultapp.jobs_mechanics.stuck"
WAITER = "tests.faultapp.jobs.storm"


def logged_ns(ledger: Ledger, kind: str, job_id: int) -> int:
    (line,) = [line for line in ledger.lines(kind) if int(line[1]) == job_id]
    return int(line[3])


@pytest.mark.parametrize(
    "how", ["sleep", "cpu", pytest.param("pg_sleep", marks=pytest.mark.postgres, id="pg_sleep")]
)
def test_a_stuck_job_times_out_within_1s_of_its_limit_and_the_next_holder_starts(
    start_worker, ledger, how
):
    """Row 6: the stuck attempt fails with ``JobTimeout`` ("timed out after Ns") between its
    limit and one second later (database clock, claim to recorded failure); its writes roll
    back; a job declaring the same object starts within a second of the interruption.
    """
    limit = size(1.0, 5.0)
    rounds = size(1, 3)
    LedgerCounter.objects.get_or_create(name=ledger.counter)
    slot = Slot.objects.create()
    # Two workers: one gets stuck, the other claims the waiter and retries its locks.
    workers = [start_worker(*FOREVER, env=ledger.env) for _ in range(2)]
    overshoot, gaps = [], []
    for _ in range(rounds):
        stuck = schedule(
            STUCK,
            kwargs={"counter": ledger.counter, "seconds": 600, "how": how},
            timeout=limit,
            max_attempts=1,
            locks=[slot],
        )
        wait_for(lambda stuck=stuck: ledger.executions()[stuck.pk] == 1)
        waiter = schedule(WAITER, kwargs={"slots": [slot.pk]}, locks=[slot])
        wait_for(lambda waiter=waiter: ledger.done([waiter.pk]), timeout=limit + 20)

        stuck.refresh_from_db()
        assert stuck.status == "failed"
        assert f"timed out after {limit:g}s" in stuck.last_error
        error = JobError.objects.get(job=stuck)
        assert error.exception == "async_queue.exceptions.JobTimeout"
        seconds = stuck.duration.total_seconds()
        assert limit <= seconds <= limit + 1.0, seconds
        overshoot.append(seconds - limit)

        # The waiter's body began only after the stuck body was interrupted, and soon.
        interrupted = logged_ns(ledger, "interrupted", stuck.pk)
        gap = (logged_ns(ledger, "enter", waiter.pk) - interrupted) / 1e9
        assert 0 < gap < 5, gap  # next and soon, not after the stuck body's 600 s
        gaps.append(gap)
    for worker in workers:
        assert worker.process.poll() is None, worker.stderr  # both workers went on
    assert ledger.value() == 0  # every stuck attempt's write rolled back
    slot.refresh_from_db()
    assert slot.value == rounds
    assert Job.objects.filter(name=WAITER, status="succeeded").count() == rounds
    report(
        6,
        "timeouts",
        stuck_in=how,
        limit_s=limit,
        rounds=rounds,
        seconds_past_limit=[round(s, 3) for s in overshoot],
        waiter_started_after_s=[round(g, 3) for g in gaps],
    )
