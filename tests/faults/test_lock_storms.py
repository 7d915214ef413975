"""Row 8: lock storms. Jobs locking random sets of shared objects never overlap on one, never
deadlock, and lose no increment; a job over 100,000 objects takes one model-wide lock.
"""

from __future__ import annotations

import collections
import itertools
import random
import time

import pytest
from django.db import connection, transaction

from async_queue import Job, JobError, schedule, schedule_many
from async_queue.conf import queue_settings
from async_queue.exceptions import ScheduleError
from async_queue.locks import Conflict, hold
from async_queue.models import JobLock
from tests.conftest import wait_for
from tests.faultapp.models import Slot
from tests.faults.conftest import Ledger, on_postgres, report, size

pytestmark = pytest.mark.django_db(transaction=True)
FOREVER = ("--forever", "--sleep", "0.05")
STORM = "tests.faultapp.jobs.storm"
HELD = "tests.faultapp.jobs_mechanics.advisory_locks_held"


def deadlocks() -> int | None:
    """PostgreSQL's own count of deadlocks detected in this database."""
    if not on_postgres():
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def holder_overlaps(ledger: Ledger) -> tuple[int, int]:
    """Pairs of bodies that held one slot at the same time, and how many holds were checked."""
    entered = {int(line[1]): int(line[3]) for line in ledger.lines("enter")}
    intervals: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
    for line in ledger.lines("leave"):
        job_id, left = int(line[1]), int(line[3])
        for slot in map(int, line[4].split(",")):
            intervals[slot].append((entered[job_id], left))
    overlaps = holds = 0
    for spans in intervals.values():
        spans.sort()
        holds += len(spans)
        overlaps += sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])
    return overlaps, holds


def test_a_lock_storm_keeps_one_holder_per_object_and_never_deadlocks(start_worker, ledger):
    """Row 8: N jobs each lock a random 1-5 of 50 slots (declared in random order), 4 workers.

    Each slot ends equal to the number of jobs that declared it, no two bodies ever held
    one slot at once (enter/leave times from the execution log), no job failed or
    recorded an error, and PostgreSQL detected no deadlock.
    """
    jobs = size(300, 2000)
    Slot.objects.bulk_create([Slot() for _ in range(50)])
    pks = list(Slot.objects.values_list("pk", flat=True))
    rng = random.Random(8)
    expected: collections.Counter[int] = collections.Counter()
    calls = []
    for _ in range(jobs):
        chosen = rng.sample(pks, rng.randint(1, 5))
        expected.update(chosen)
        rng.shuffle(chosen)
        calls.append(
            {
                "function": STORM,
                "kwargs": {"slots": chosen, "pause": 0.002},
                "locks": [(Slot, pk) for pk in chosen],
            }
        )
    ids = [job.pk for job in schedule_many(calls, on_commit=False)]
    deadlocks_before = deadlocks()
    started = time.monotonic()
    workers = [start_worker(*FOREVER, env=ledger.env) for _ in range(4)]
    wait_for(lambda: ledger.done(ids), timeout=size(120, 600))
    elapsed = time.monotonic() - started
    for worker in workers:
        worker.kill()

    values = dict(Slot.objects.values_list("pk", "value"))
    assert values == {pk: expected[pk] for pk in pks}
    overlaps, holds = holder_overlaps(ledger)
    assert overlaps == 0
    assert holds == sum(expected.values())
    # No body rolled back and ran again.
    assert collections.Counter(int(line[1]) for line in ledger.lines("enter")) == dict.fromkeys(
        ids, 1
    )
    assert not JobError.objects.filter(job__in=ids).exists()
    assert not Job.objects.filter(pk__in=ids).exclude(status="succeeded").exists()
    assert deadlocks() == deadlocks_before
    deferred = sum(worker.stdout.count(" deferred after ") for worker in workers)
    report(
        8,
        "lock storm",
        jobs=jobs,
        objects=50,
        workers=4,
        holds_checked=holds,
        overlapping_holders=overlaps,
        deadlocks=0 if on_postgres() else None,
        failed=0,
        deferred_for_busy_locks=deferred,
        seconds=round(elapsed, 1),
    )


def test_a_job_declaring_100000_objects_takes_one_model_lock(start_worker, ledger):
    """Row 8: handled, not rejected. Above ``LOCK_ESCALATION`` objects of one model a job
    locks the whole model: on PostgreSQL its session holds one advisory lock (the model
    lock; the worker's liveness lock is on a connection of its own), not one per object,
    so it cannot exhaust the lock table; edits of any object of that model conflict while
    it runs. One key over ``MAX_LOCKS`` is refused at ``schedule()`` with a clear error,
    nothing written.
    """
    count = size(10_000, 100_000)
    assert count > queue_settings.LOCK_ESCALATION
    began = time.monotonic()
    job = schedule(HELD, kwargs={"pause": 1.0}, locks=[(Slot, pk) for pk in range(1, count + 1)])
    scheduled_in = time.monotonic() - began
    assert JobLock.objects.filter(job=job).count() == count
    worker = start_worker("--jobs", "1", env=ledger.env)
    wait_for(lambda: ledger.executions()[job.pk] == 1)
    declared, other = (Slot, count // 2), (Slot, count + 10)
    with transaction.atomic(), pytest.raises(Conflict, match=f"job {job.pk}"), hold(declared):
        pass
    if on_postgres():  # SQLite's hold() would wait on the job's write lock instead
        # Not declared, but its model is locked.
        with transaction.atomic(), pytest.raises(Conflict), hold(other):
            pass
    assert worker.wait(timeout=60) == 0, worker.stderr
    job.refresh_from_db()
    assert job.status == "succeeded"
    if on_postgres():
        assert job.result["advisory"] == 1, job.result
        assert job.result["all"] < 20, job.result

    too_many = queue_settings.MAX_LOCKS + 1
    jobs_before = Job.objects.count()
    with pytest.raises(ScheduleError, match=r"100001 lock keys are over the limit of 100000"):
        schedule(HELD, locks=[(Slot, pk) for pk in range(1, too_many + 1)])
    assert Job.objects.count() == jobs_before
    report(
        8,
        "lock storm: a job over many objects",
        objects=count,
        handled="ran, one model lock" if on_postgres() else "ran, under the one write lock",
        advisory_locks_held=job.result["advisory"],
        all_locks_held=job.result["all"],
        schedule_seconds=round(scheduled_in, 2),
        over_max_locks="ScheduleError at schedule(), nothing written",
    )
