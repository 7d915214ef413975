"""Row 1: SIGKILL random workers while ledger jobs run; every job commits exactly once."""

import random
import time

import pytest
from django.db.models import F, Sum

from async_queue import Job, JobError
from async_queue.conf import queue_settings
from tests.conftest import WorkerProcess
from tests.faults.conftest import report, size

pytestmark = pytest.mark.django_db(transaction=True)
FOREVER = ("--forever", "--sleep", "0.1", "-v", "0")


def wait_for_busy_workers(workers: list[WorkerProcess], ids: list[int], ledger) -> list[int]:
    """The indexes of the workers running one of ``ids``, once some are ([] once all done)."""
    deadline = time.monotonic() + 60
    while not ledger.done(ids):
        names = list(Job.objects.running().filter(pk__in=ids).values_list("worker", flat=True))
        busy = [
            index
            for index, worker in enumerate(workers)
            if any(f":{worker.process.pid}:" in name for name in names)
        ]
        if busy:
            return busy
        assert time.monotonic() < deadline, "no worker ran a job for 60 s"
        time.sleep(0.02)
    return []


def test_kill_9_chaos_every_job_commits_exactly_once(start_worker, ledger):
    jobs = size(1000, 10_000)
    interval = size(0.5, 2.0)
    ids = ledger.schedule(jobs, kwargs={"pause": 0.005})
    workers = [start_worker(*FOREVER, env=ledger.env) for _ in range(4)]
    rng = random.Random(1)
    kills = 0
    started = time.monotonic()
    while not ledger.done(ids):
        assert time.monotonic() - started < size(240, 900), "the jobs did not finish"
        time.sleep(interval)
        # Kill a worker while it runs a job (a restarted one may still be starting up), so
        # that the kills land mid-job and their jobs must be recovered.
        running = wait_for_busy_workers(workers, ids, ledger)
        if not running:
            break  # every job is done
        index = rng.choice(running)
        workers[index].kill()
        kills += 1
        workers[index] = start_worker(*FOREVER, env=ledger.env)
    elapsed = time.monotonic() - started
    # Nothing stays running once every job is done and one recovery interval has passed.
    time.sleep(queue_settings.RECOVERY_INTERVAL)
    assert not Job.objects.filter(pk__in=ids, status="running").exists()
    assert not Job.objects.filter(pk__in=ids, status="failed").exists()
    ledger.assert_exactly_once(ids)
    executions = ledger.executions()
    rolled_back = sum(executions.values()) - jobs
    lost = JobError.objects.filter(job__in=ids, message__contains="was lost").count()
    # Every execution beyond the first was a killed, rolled-back attempt, and each is on
    # record (a kill between claim and body start is a lost attempt without an execution).
    assert rolled_back <= lost
    assert kills >= 3
    assert lost >= 1  # kills landed mid-job, and those jobs were recovered
    # Every attempt beyond a job's first is one that a kill lost, and only those jobs retried.
    retried = Job.objects.filter(pk__in=ids, attempts__gt=1)
    extra = retried.aggregate(extra=Sum(F("attempts") - 1))["extra"]
    assert extra == lost
    assert retried.count() == len(
        set(JobError.objects.filter(job__in=ids).values_list("job", flat=True))
    )
    report(
        1,
        "kill -9 chaos",
        jobs=jobs,
        workers=4,
        kills=kills,
        kill_interval_s=interval,
        rolled_back_executions=rolled_back,
        lost_attempts=lost,
        duplicates=ledger.duplicates(),
        counter=ledger.value(),
        seconds=round(elapsed, 1),
    )
