"""Row 5: shutdown. SIGTERM mid-job commits the job and exits 0; a second SIGTERM, or the
end of ``flush_queue --grace``, rolls it back and requeues it within seconds, even from
inside a long SQL statement. (A supervisor's SIGKILL is row 1.)
"""

from __future__ import annotations

import signal
import time

import pytest
from django.db import connection

from async_queue import Job, JobError, schedule
from async_queue.sql import database_now
from tests.conftest import wait_for
from tests.faultapp.models import LedgerCounter
from tests.faults.conftest import Ledger, report, size

pytestmark = pytest.mark.django_db(transaction=True)
FOREVER = ("--forever", "--sleep", "0.1")
STALLED = "tests.faultapp.jobs_mechanics.ledger_stalled"


def body_started(ledger: Ledger, job_id: int, kind: str = "run") -> bool:
    return any(int(line[1]) == job_id for line in ledger.lines(kind))


def test_sigterm_mid_job_commits_the_job_and_exits_0(start_worker, ledger):
    """Row 5: the running job finishes and commits, the next one is not started, exit 0."""
    rounds = size(1, 5)
    pause = size(1.0, 3.0)
    exits = []
    for _ in range(rounds):
        running, waiting = ledger.schedule(2, kwargs={"pause": pause}, priority=1)
        worker = start_worker(*FOREVER, env=ledger.env)
        wait_for(lambda running=running: body_started(ledger, running))
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=pause + 20) == 0, worker.stderr
        exits.append(time.monotonic() - signalled)
        assert Job.objects.get(pk=running).status == "succeeded"
        assert (Job.objects.get(pk=waiting).status, Job.objects.get(pk=waiting).attempts) == (
            "queued",
            0,
        )
        Job.objects.filter(pk=waiting).delete()
    committed = list(Job.objects.values_list("pk", flat=True))
    ledger.assert_exactly_once(committed)
    assert sum(ledger.executions().values()) == rounds
    # It waited for the job (the body had most of its pause left), then exited promptly.
    assert all(pause / 2 < seconds < pause + 5 for seconds in exits), exits
    report(
        5,
        "shutdown: one SIGTERM",
        rounds=rounds,
        job_pause_s=pause,
        exit_code=0,
        seconds_to_exit=[round(s, 2) for s in exits],
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
    )


def active_pg_sleeps() -> int:
    """Other sessions of this database still running a pg_sleep (a query left behind)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state <> 'idle' AND query ILIKE %s",
            ["%pg_sleep%"],
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize(
    "how", ["sleep", pytest.param("pg_sleep", marks=pytest.mark.postgres, id="pg_sleep")]
)
def test_a_second_sigterm_rolls_back_and_requeues_within_seconds(start_worker, ledger, how):
    """Row 5: a job stalled (in Python, or in a server-side ``pg_sleep``) after writing is
    aborted by a second SIGTERM: its writes roll back, the query is cancelled server-side,
    the job is queued again at once with the abort on record, the worker exits 1; a new
    worker then runs it exactly once.
    """
    rounds = size(1, 5)
    stall = 600  # far beyond the test: only an abort can end it
    LedgerCounter.objects.get_or_create(name=ledger.counter)
    aborts = []
    for committed in range(rounds):
        job = schedule(STALLED, kwargs={"counter": ledger.counter, "seconds": stall, "how": how})
        worker = start_worker(*FOREVER, env=ledger.env)
        wait_for(lambda job=job: body_started(ledger, job.pk, "stalled"))
        if how == "pg_sleep":
            wait_for(lambda: active_pg_sleeps() == 1)
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert worker.process.poll() is None  # the first signal waits for the job
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 1
        aborts.append(time.monotonic() - signalled)
        assert "rolled back and requeued" in worker.stderr
        if how == "pg_sleep":
            assert active_pg_sleeps() == 0

        job.refresh_from_db()
        assert (job.status, job.attempts) == ("queued", 1)
        assert job.run_after <= database_now("default")
        error = JobError.objects.get(job=job)
        assert error.exception == "async_queue.exceptions.WorkerAborted"
        assert "aborted by SIGTERM" in error.message
        assert ledger.value() == committed  # the aborted attempt's writes rolled back

        # A new worker then commits the job once.
        rerun = start_worker(env=ledger.env)
        assert rerun.wait(timeout=30) == 0, rerun.stderr
        assert ledger.value() == committed + 1
    ids = list(Job.objects.values_list("pk", flat=True))
    ledger.assert_exactly_once(ids)
    assert set(ledger.executions().values()) == {2}
    # "Within seconds": from the second signal to a requeued job and an exited worker.
    assert max(aborts) < 5, aborts
    report(
        5,
        "shutdown: second SIGTERM aborts",
        stalled_in=how,
        rounds=rounds,
        exit_code=1,
        seconds_to_requeue_and_exit=[round(s, 2) for s in aborts],
        lingering_queries=0 if how == "pg_sleep" else None,
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
    )


@pytest.mark.parametrize(
    "how", ["sleep", pytest.param("pg_sleep", marks=pytest.mark.postgres, id="pg_sleep")]
)
def test_the_grace_period_running_out_aborts_like_a_second_signal(start_worker, ledger, how):
    """Row 5: with ``--grace``, one SIGTERM is enough: a job still running when the grace
    period ends is rolled back and requeued, and the worker exits 1 soon after.
    """
    grace = size(1.0, 3.0)
    LedgerCounter.objects.get_or_create(name=ledger.counter)
    job = schedule(STALLED, kwargs={"counter": ledger.counter, "seconds": 600, "how": how})
    worker = start_worker(*FOREVER, "--grace", str(grace), env=ledger.env)
    wait_for(lambda: body_started(ledger, job.pk, "stalled"))
    if how == "pg_sleep":
        wait_for(lambda: active_pg_sleeps() == 1)
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=grace + 20) == 1
    waited = time.monotonic() - signalled
    assert grace <= waited < grace + 5, waited
    assert "grace period ran out" in worker.stderr
    if how == "pg_sleep":
        assert active_pg_sleeps() == 0
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("queued", 1)
    assert "grace period ran out" in JobError.objects.get(job=job).message
    assert ledger.value() == 0  # rolled back

    # A job that ends within the grace period commits, and the worker exits 0.
    quick = ledger.schedule(1, kwargs={"pause": grace / 3}, priority=5)[0]
    worker = start_worker(*FOREVER, "--grace", str(grace), env=ledger.env)
    wait_for(lambda: body_started(ledger, quick))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=grace + 20) == 0, worker.stderr
    assert Job.objects.get(pk=quick).status == "succeeded"
    report(5, "shutdown: grace period", stalled_in=how, grace_s=grace,
           seconds_to_requeue_and_exit=round(waited, 2))  # fmt: skip


def test_grace_must_be_positive(manage):
    result = manage("flush_queue", "--grace", "0", check=False)
    assert result.returncode == 1
    assert "--grace must be a positive number of seconds." in result.stderr
