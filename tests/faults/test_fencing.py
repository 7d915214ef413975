"""Row 2: fenced completion. A falsely rescued job commits exactly once.

No threshold depends on a job's runtime: a worker's job is only requeued once
its liveness lock is free and its heartbeat late (behind a pooler, once its
heartbeat is older than WORKER_TIMEOUT, however long the job). So the false
rescue is forced: the real crash recovery (``Worker.recover()``) runs while
the first runner is still mid-job, told that every worker is dead. A second
real worker then claims the job and runs it next to the first one.
"""

from __future__ import annotations

import socket
import time

import pytest

from async_queue import Job, JobError, schedule
from async_queue.sql import dialect
from async_queue.worker import Worker
from tests.conftest import WorkerProcess, wait_for
from tests.faultapp.models import LedgerCounter, LedgerEntry
from tests.faults.conftest import Ledger, on_postgres, report, size

pytestmark = pytest.mark.django_db(transaction=True)
JOB = "tests.faultapp.jobs_mechanics.fenced_ledger"
FINAL = ("status", "attempts", "worker", "result", "finished_at")


def false_rescue(monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the real crash recovery, told that every running job's worker is dead (none is)."""
    with monkeypatch.context() as patch:
        sql = type(dialect("default"))
        patch.setattr(sql, "dead_workers", lambda self, workers: set(workers))
        return Worker(worker_id="false-rescuer").recover()


def slow_job(ledger: Ledger, pause: float, write_first: bool) -> Job:
    LedgerCounter.objects.get_or_create(name=ledger.counter)
    return schedule(
        JOB, kwargs={"counter": ledger.counter, "pause": pause, "write_first": write_first}
    )


def ran(ledger: Ledger, kind: str, job: Job) -> bool:
    return any(int(line[1]) == job.pk for line in ledger.lines(kind))


def worker_of(process: WorkerProcess) -> str:
    return f"{socket.gethostname()}:{process.process.pid}:"


@pytest.mark.postgres
@pytest.mark.parametrize(
    "write_first",
    [
        pytest.param(True, id="rescued-run-waits-on-the-losers-row-lock"),
        pytest.param(False, id="loser-completes-after-the-winner-committed"),
    ],
)
def test_a_falsely_rescued_job_commits_once_and_the_loser_rolls_back(
    start_worker, ledger, monkeypatch, write_first
):
    """Row 2 (PostgreSQL): two real workers run the same job; exactly one transaction commits.

    ``write_first``: the first runner writes, then waits holding the counter's row
    lock, so the rescued run queues behind it and commits after the loser's fenced
    completion rolled back. Otherwise the first runner waits, then writes after the
    rescued run has committed: its completion matches no row and the final state
    stays the winner's.
    """
    rounds = size(1, 5)
    pause = size(1.5, 3.0)
    started = time.monotonic()
    for _ in range(rounds):
        job = slow_job(ledger, pause, write_first)
        loser = start_worker("--jobs", "1", env=ledger.env)
        wait_for(lambda job=job: ran(ledger, "wrote" if write_first else "run", job))
        assert false_rescue(monkeypatch) == 1
        winner = start_worker("--jobs", "1", env=ledger.env)
        wait_for(lambda job=job: Job.objects.get(pk=job.pk).status == "succeeded", timeout=30)
        final = Job.objects.filter(pk=job.pk).values(*FINAL).get()
        assert loser.wait() == 0, loser.stderr
        assert winner.wait() == 0, winner.stderr

        # The loser's body ran, and its completion was fenced: nothing of it stayed.
        assert f"job {job.pk} {JOB} fenced" in loser.stdout
        assert f"job {job.pk} {JOB} succeeded" in winner.stdout
        runs = [int(line[2]) for line in ledger.lines("run") if int(line[1]) == job.pk]
        assert runs == [loser.process.pid, winner.process.pid]
        entry = LedgerEntry.objects.get(job_id=job.pk)
        assert entry.pid == winner.process.pid
        # The final state is the winner's, never overwritten by the loser.
        assert Job.objects.filter(pk=job.pk).values(*FINAL).get() == final
        assert final["status"] == "succeeded"
        assert final["attempts"] == 2
        assert final["worker"].startswith(worker_of(winner))
        assert final["result"] == {"pid": winner.process.pid, "attempt": 2}
        error = JobError.objects.get(job=job)
        assert error.attempt == 1
        assert error.worker.startswith(worker_of(loser))
        assert "was lost" in error.message

    ids = list(Job.objects.filter(name=JOB).values_list("pk", flat=True))
    assert len(ids) == rounds
    ledger.assert_exactly_once(ids)
    report(
        2,
        "fenced completion",
        scenario="rescued run waits" if write_first else "loser completes late",
        rounds=rounds,
        executions=sum(ledger.executions().values()),
        commits=LedgerEntry.objects.filter(counter=ledger.counter).count(),
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
        seconds=round(time.monotonic() - started, 1),
    )


@pytest.mark.skipif(on_postgres(), reason="SQLite's single writer; PostgreSQL runs the test above")
def test_sqlite_a_false_rescue_waits_for_the_job_and_then_matches_no_row(
    start_worker, ledger, monkeypatch
):
    """Row 2 (SQLite): a job's transaction holds the only write lock from its start, so a
    false rescue cannot even write until the job has committed; then its fenced update
    matches no row and the job stays succeeded, once.
    """
    rounds = size(1, 5)
    pause = size(1.5, 3.0)
    waited = []
    for _ in range(rounds):
        job = slow_job(ledger, pause, write_first=True)
        runner = start_worker("--jobs", "1", env=ledger.env)
        wait_for(lambda job=job: ran(ledger, "wrote", job))
        before = time.monotonic()
        assert false_rescue(monkeypatch) == 0
        waited.append(time.monotonic() - before)
        assert runner.wait() == 0, runner.stderr
        row = Job.objects.get(pk=job.pk)
        assert (row.status, row.attempts) == ("succeeded", 1)
        assert row.worker.startswith(worker_of(runner))
        assert not row.errors.exists()
        assert ledger.executions()[job.pk] == 1
    # The rescue waited for the job's write lock (most of the pause), it did not race it.
    assert min(waited) > pause / 3
    ids = list(Job.objects.filter(name=JOB).values_list("pk", flat=True))
    ledger.assert_exactly_once(ids)
    report(
        2,
        "fenced completion",
        scenario="sqlite: rescue waits for the write lock, then is fenced",
        rounds=rounds,
        rescue_waited_s=round(min(waited), 2),
        executions=sum(ledger.executions().values()),
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
    )
