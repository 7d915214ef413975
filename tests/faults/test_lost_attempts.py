"""Rows 26 and 30: what is nobody's fault is retried; what the job raises never stops its worker.

Row 26: a single-attempt job (powercrud's bulk jobs make one attempt) whose
worker is SIGKILLed mid-job, or whose database connection is terminated
(PostgreSQL), is retried by itself and commits exactly once; a single-attempt
job that fails by itself is not retried; a job that kills its worker every time
still ends, after ``MAX_LOST_ATTEMPTS`` counted attempts.

Row 30: a job body that raises ``KeyboardInterrupt`` fails that attempt, which is
recorded and retried as any failure; the worker keeps running (no exit, no job
left ``running``, no "worker lost" record).
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.db import connection

from async_queue import Job, JobError, Status, schedule
from async_queue.conf import queue_settings
from tests.conftest import wait_for
from tests.faults.conftest import Ledger, on_postgres, report, size

pytestmark = pytest.mark.django_db(transaction=True)
WORKER = ("--forever", "--sleep", "0.1")


def stalled(ledger: Ledger, how: str) -> Job:
    return schedule(
        "tests.faultapp.jobs_mechanics.ledger_stalled",
        kwargs={"counter": ledger.counter, "seconds": 30, "how": how},
        max_attempts=1,
        on_commit=False,
    )


def test_single_attempt_jobs_lost_to_the_infrastructure_are_retried(ledger: Ledger, start_worker):
    rounds = int(size(2, 10))
    ledger.schedule(0)
    kills = 0
    retried: list[Job] = []
    started = time.monotonic()
    for _ in range(rounds):
        job = stalled(ledger, "sleep")
        worker = start_worker(*WORKER, env=ledger.env)
        wait_for(lambda: bool(ledger.lines("stalled")))
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.wait()
        kills += 1
        rescuer = start_worker(*WORKER, env=ledger.env)
        wait_for(lambda job=job: Job.objects.get(pk=job.pk).is_finished, timeout=30)
        rescuer.kill()
        ledger.log.write_text("")  # the next round's "stalled" line is its own
        retried.append(job)

    terminated = 0
    if on_postgres():
        for _ in range(rounds):
            job = stalled(ledger, "pg_sleep")
            worker = start_worker(*WORKER, env=ledger.env)
            wait_for(lambda: bool(ledger.lines("stalled")))
            with connection.cursor() as cursor:
                for _ in range(100):
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE query LIKE %s AND pid <> pg_backend_pid()",
                        ["SELECT pg_sleep%"],
                    )
                    if cursor.fetchall():
                        break
                    time.sleep(0.05)
            terminated += 1
            wait_for(lambda job=job: Job.objects.get(pk=job.pk).is_finished, timeout=30)
            assert worker.process.poll() is None, "the worker died with its connection"
            worker.kill()
            ledger.log.write_text("")
            retried.append(job)
    elapsed = time.monotonic() - started

    for job in retried:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.max_attempts) == (Status.SUCCEEDED, 2, 1), job
        (error,) = JobError.objects.filter(job=job)
        assert error.attempt == 1
    ledger.assert_exactly_once([job.pk for job in retried])

    # A single-attempt job that fails by itself is not retried.
    own = schedule("tests.testapp.tasks.fail", ["invalid"], max_attempts=1, on_commit=False)
    # A job that kills its worker every time ends after MAX_LOST_ATTEMPTS, whatever its own.
    pill = schedule("tests.faultapp.jobs.kill_own_worker", max_attempts=1, on_commit=False)
    pool = start_worker("--forever", "--processes", "2", "--sleep", "0.1", env=ledger.env)
    wait_for(
        lambda: Job.objects.filter(pk__in=[own.pk, pill.pk], status=Status.FAILED).count() == 2,
        timeout=60,
    )
    pool.kill()
    own.refresh_from_db()
    pill.refresh_from_db()
    assert own.attempts == 1
    assert pill.attempts == queue_settings.MAX_LOST_ATTEMPTS == 3
    assert "was lost" in pill.last_error
    report(
        26,
        "infrastructure losses are retried",
        single_attempt_jobs=len(retried),
        workers_killed=kills,
        connections_terminated=terminated,
        succeeded_on_attempt_2=len(retried),
        exactly_once=True,
        own_failure_attempts=own.attempts,
        poison_pill_attempts=pill.attempts,
        seconds=round(elapsed, 1),
    )


def test_a_keyboard_interrupt_raised_by_a_job_fails_the_attempt_not_the_worker(
    ledger: Ledger, start_worker
):
    count = int(size(20, 200))
    ledger.schedule(0)
    interrupted = [
        schedule(
            "tests.faultapp.jobs_mechanics.interrupt_first_attempt",
            kwargs={"counter": ledger.counter},
            on_commit=False,
        ).pk
        for _ in range(count)
    ]
    normal = ledger.schedule(count)
    worker = start_worker(*WORKER, env=ledger.env)
    wait_for(lambda: ledger.done([*interrupted, *normal]), timeout=size(60, 300))
    assert worker.process.poll() is None, "the worker stopped"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.stderr

    errors = JobError.objects.filter(job_id__in=interrupted)
    assert errors.count() == count
    assert set(errors.values_list("exception", "attempt")) == {("KeyboardInterrupt", 1)}
    assert not JobError.objects.filter(message__contains="was lost").exists()
    assert set(Job.objects.filter(pk__in=interrupted).values_list("attempts", flat=True)) == {2}
    assert ledger.value() == 2 * count  # the interrupted attempts rolled back
    report(
        30,
        "KeyboardInterrupt raised by a job",
        jobs=count,
        recorded_as="KeyboardInterrupt",
        worker_lost_records=0,
        worker_exit=0,
        counter=ledger.value(),
    )
