"""The fault suite's harness: real workers, a ledger job and an out-of-band execution log.

Every test here runs at CI size in the normal run and at full size under
``./runtests --faults`` (``ASYNC_QUEUE_FAULTS=full``). Use ``size(ci, full)``
for every count and duration that the issue's figures are about.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from async_queue import schedule_many
from async_queue.models import Job
from tests.conftest import ROOT
from tests.faultapp.models import LedgerCounter, LedgerEntry

FULL = os.environ.get("ASYNC_QUEUE_FAULTS") == "full"
REPORT = ROOT / ".pytest-db" / "faults.jsonl"


def size(ci: int | float, full: int | float) -> int | float:
    """The CI-size figure in the normal run, the full-size one under ``--faults``."""
    return full if FULL else ci


def report(row: int, title: str, **figures: object) -> None:
    """Record what a fault test measured (``.pytest-db/faults.jsonl``, and stdout with -s)."""
    entry = {
        "row": row,
        "title": title,
        "size": "full" if FULL else "ci",
        "database": os.environ.get("ASYNC_QUEUE_TEST_DB", "sqlite"),
        **figures,
    }
    line = json.dumps(entry, default=str)
    print(line)
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a") as stream:
        stream.write(line + "\n")


def on_postgres() -> bool:
    return os.environ.get("ASYNC_QUEUE_TEST_DB", "sqlite") == "postgres"


@dataclass
class Ledger:
    """Schedules ledger jobs and checks that each committed exactly once."""

    log: Path
    counter: str = "ledger"

    @property
    def env(self) -> dict[str, str]:
        """Environment for worker processes, so their jobs write the execution log."""
        return {"FAULT_EXEC_LOG": str(self.log)}

    def schedule(self, count: int, batch: int = 1000, **options) -> list[int]:
        """Queue ``count`` ledger jobs (written at once); returns their ids."""
        LedgerCounter.objects.get_or_create(name=self.counter)
        kwargs = options.pop("kwargs", {})
        ids: list[int] = []
        for start in range(0, count, batch):
            calls = [
                ("tests.faultapp.jobs.ledger", (), {"counter": self.counter, **kwargs})
                for _ in range(min(batch, count - start))
            ]
            ids.extend(job.pk for job in schedule_many(calls, on_commit=False, **options))
        return ids

    def lines(self, kind: str | None = None) -> list[list[str]]:
        if not self.log.exists():
            return []
        rows = [line.split() for line in self.log.read_text().splitlines() if line]
        return [row for row in rows if kind is None or row[0] == kind]

    def executions(self) -> collections.Counter[int]:
        """How many times each job's body started (committed or not)."""
        return collections.Counter(int(row[1]) for row in self.lines("run"))

    def value(self) -> int:
        return LedgerCounter.objects.get(name=self.counter).value

    def duplicates(self) -> int:
        """Ledger rows beyond one per job: a double commit."""
        entries = LedgerEntry.objects.filter(counter=self.counter)
        return entries.count() - entries.values("job_id").distinct().count()

    def done(self, ids: Iterable[int]) -> bool:
        return not Job.objects.filter(pk__in=list(ids)).exclude(status="succeeded").exists()

    def assert_exactly_once(self, ids: list[int]) -> None:
        """Counter exact, one ledger row per job, every job succeeded."""
        assert self.value() == len(ids)
        assert self.duplicates() == 0
        assert LedgerEntry.objects.filter(counter=self.counter).count() == len(ids)
        statuses = collections.Counter(
            Job.objects.filter(pk__in=ids).values_list("status", flat=True)
        )
        assert statuses == {"succeeded": len(ids)}, statuses


def wait_until_drained(timeout: float) -> float:
    """Wait until no job is queued or running; returns the seconds it took."""
    from tests.conftest import wait_for

    started = time.monotonic()
    wait_for(
        lambda: not Job.objects.filter(status__in=["queued", "running"]).exists(),
        timeout=timeout,
    )
    return time.monotonic() - started


@dataclass
class HeldObject:
    """A running job (``tests.faultapp.jobs_web.hold``) that holds an object's lock."""

    job: Job
    seconds: float  # how long it holds at most
    release: Path  # touch it to end the hold early (CI size)

    def end(self) -> None:
        """Release the hold and wait until the job has committed."""
        from tests.conftest import wait_for

        self.release.touch()
        wait_for(
            lambda: Job.objects.get(pk=self.job.pk).status == "succeeded",
            timeout=self.seconds + 30,
        )


def hold_in_a_job(target: object, tmp_path: Path, start_worker) -> HeldObject:
    """Start a worker whose job holds ``target``'s lock; return once the job holds it.

    Full size it holds for 30 s; at CI size until ``end()`` (120 s at most).
    """
    from async_queue import schedule
    from tests.conftest import wait_for

    log, release = tmp_path / "executions.log", tmp_path / "release"
    seconds = float(size(120, 30))
    job = schedule(
        "tests.faultapp.jobs_web.hold",
        kwargs={"seconds": seconds, "release": "" if FULL else str(release)},
        locks=[target],
    )
    start_worker("--forever", "--sleep", "0.1", "-v", "0", env={"FAULT_EXEC_LOG": str(log)})
    wait_for(lambda: log.exists() and log.read_text().startswith("hold"), timeout=30)
    return HeldObject(job, seconds, release)


@pytest.fixture
def ledger(transactional_db, tmp_path) -> Ledger:
    return Ledger(log=tmp_path / "executions.log")
