"""Row 11: clocks. Scheduling uses the database clock, so a worker whose own clock is an hour
off (ahead or behind) neither starts jobs early (nor late) nor steals live jobs.

Only the worker subprocess's clock is skewed: a ``sitecustomize`` module, first on
its ``PYTHONPATH``, shifts ``time.time``, ``time.time_ns`` and ``datetime.now`` (which
``django.utils.timezone.now`` uses) before Django is imported. A probe job proves it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from async_queue import Job, JobError, schedule
from tests.conftest import child_env, wait_for
from tests.faultapp.models import LedgerCounter
from tests.faults.conftest import Ledger, report, size

pytestmark = pytest.mark.django_db(transaction=True)
HOUR = 3600
PROBE = "tests.faultapp.jobs_mechanics.clock_probe"
LEDGER = "tests.faultapp.jobs.ledger"
OFFSETS = [pytest.param(HOUR, id="an-hour-ahead"), pytest.param(-HOUR, id="an-hour-behind")]

SITECUSTOMIZE = """\
import datetime as _datetime
import os as _os
import time as _time

_OFFSET = float(_os.environ["FAULT_CLOCK_OFFSET"])
_time_real, _time_ns_real = _time.time, _time.time_ns
_time.time = lambda: _time_real() + _OFFSET
_time.time_ns = lambda: _time_ns_real() + int(_OFFSET * 1e9)


class _SkewedDatetime(_datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return super().now(tz) + _datetime.timedelta(seconds=_OFFSET)

    @classmethod
    def utcnow(cls):
        return cls.now(_datetime.UTC).replace(tzinfo=None)

    @classmethod
    def today(cls):
        return cls.now()


_datetime.datetime = _SkewedDatetime
"""


def skewed_env(directory: Path, offset: int, ledger: Ledger) -> dict[str, str]:
    """Environment of a worker whose clock is ``offset`` seconds off."""
    directory.mkdir(exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {
        **ledger.env,
        "FAULT_CLOCK_OFFSET": str(offset),
        "PYTHONPATH": f"{directory}:{child_env()['PYTHONPATH']}",
    }


def assert_skewed(probe: Job, offset: int) -> float:
    """The probe ran in the skewed worker and saw its clock ``offset`` seconds off.

    Compared with the database clock's start and end of the probe's attempt.
    """
    probe.refresh_from_db()
    assert probe.status == "succeeded", probe.last_error
    seen = probe.result["time"] - probe.finished_at.timestamp()
    seen_now = datetime.fromisoformat(probe.result["now"]) - probe.started_at
    assert abs(seen - offset) < 2, seen
    assert abs(seen_now.total_seconds() - offset) < 2, seen_now
    return seen


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_skewed_worker_does_not_start_jobs_early(start_worker, ledger, tmp_path, offset):
    """Row 11: a job due in 60 s (database clock) stays queued while a worker an hour ahead
    (or behind) polls for the whole run; a job due now runs at once even an hour behind.
    """
    LedgerCounter.objects.get_or_create(name=ledger.counter)
    future = schedule(LEDGER, kwargs={"counter": ledger.counter}, run_after=timedelta(seconds=60))
    probe = schedule(PROBE)
    polling = size(3, 20)
    worker = start_worker(
        "--forever",
        "--sleep",
        "0.1",
        "--max-seconds",
        str(polling),
        env=skewed_env(tmp_path / "clock", offset, ledger),
    )
    wait_for(lambda: Job.objects.get(pk=probe.pk).status == "succeeded", timeout=20)
    probe.refresh_from_db()
    started_in = (probe.started_at - probe.created_at).total_seconds()
    assert worker.wait(timeout=polling + 20) == 0, worker.stderr
    seen = assert_skewed(probe, offset)
    assert started_in < 5
    future.refresh_from_db()
    assert (future.status, future.attempts) == ("queued", 0)
    assert ledger.value() == 0
    assert not ledger.executions()
    report(
        11,
        "clocks: no early start",
        worker_clock_offset_s=round(seen),
        polled_s=polling,
        early_starts=0,
        due_job_started_after_s=round(started_in, 2),
    )


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_skewed_worker_never_steals_a_live_job(start_worker, ledger, tmp_path, offset):
    """Row 11: while a normal worker runs a long job, a worker an hour off runs its crash
    recovery every ``RECOVERY_INTERVAL`` and never takes the job: it commits once, on its
    first attempt, with no error on record.
    """
    pause = size(3.0, 15.0)
    (job_id,) = ledger.schedule(1, kwargs={"pause": pause}, priority=1)
    owner = start_worker("--jobs", "1", env=ledger.env)
    wait_for(lambda: ledger.executions()[job_id] == 1)
    env = skewed_env(tmp_path / "clock", offset, ledger)
    skewed = start_worker("--forever", "--sleep", "0.1", env=env)
    probe = schedule(PROBE)
    assert owner.wait(timeout=pause + 30) == 0, owner.stderr
    wait_for(lambda: Job.objects.get(pk=probe.pk).status == "succeeded", timeout=20)
    assert skewed.process.poll() is None, skewed.stderr
    seen = assert_skewed(probe, offset)

    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert job.worker.split(":")[1] == str(owner.process.pid)
    assert not JobError.objects.filter(job=job).exists()
    assert ledger.executions()[job_id] == 1
    ledger.assert_exactly_once([job_id])
    report(
        11,
        "clocks: no stolen job",
        worker_clock_offset_s=round(seen),
        job_ran_s=pause,
        stolen=0,
        errors=0,
    )
