"""Row 14: forged job rows naming dangerous functions fail without anything being imported.

Rows are written straight into the job table (as someone with database access
could), bypassing ``schedule()``. A real ``flush_queue --forever`` worker runs
with the test settings (only declared jobs run). Each forged call would leave a
trace file if it ever ran, and ``tests.forbidden`` (a real module with a real
function, outside the installed apps) writes a marker file when imported.
Normal ledger jobs are interleaved with the forged rows, so the worker is shown
to keep running and to commit each of them exactly once.
"""

from __future__ import annotations

import collections
import signal
from pathlib import Path

import pytest

from async_queue import Job, JobError, Status
from tests.conftest import wait_for
from tests.faultapp.models import LedgerCounter
from tests.faults.conftest import Ledger, report, size, wait_until_drained

pytestmark = pytest.mark.django_db(transaction=True)

FORBIDDEN_MODULE = "tests.forbidden"
OUTSIDE = "outside the installed apps"


def forged_calls(traces: Path) -> list[tuple[str, list[object], str]]:
    """``(name, args, why it fails)``: each call would leave a file in ``traces`` if run."""
    return [
        ("os.system", [f"touch {traces}/system"], OUTSIDE),
        ("subprocess.check_call", [["touch", f"{traces}/check_call"]], OUTSIDE),
        (
            "builtins.eval",
            [f"__import__('os').system('touch {traces}/eval')"],
            OUTSIDE,
        ),
        (f"{FORBIDDEN_MODULE}.touch", [f"{traces}/forbidden"], OUTSIDE),
        ("importlib.import_module", [FORBIDDEN_MODULE], OUTSIDE),
        ("os.system; touch x", [], "is not a dotted path"),
        # Through a module of an installed app: its imported ``os`` is a module, not a job.
        ("tests.faultapp.jobs_web.os", [], "not a declared job"),
        ("tests.faultapp.jobs_web.os.system", [f"touch {traces}/nested"], "No module named"),
    ]


def test_forged_rows_fail_without_being_imported_and_the_worker_keeps_going(
    ledger: Ledger, tmp_path: Path, start_worker
):
    """Row 14: forged rows end failed, nothing they name is imported or called."""
    rounds = int(size(3, 50))
    traces = tmp_path / "traces"
    traces.mkdir()
    marker = tmp_path / "forbidden-imported"
    calls = forged_calls(traces)
    LedgerCounter.objects.get_or_create(name=ledger.counter)
    rows: list[Job] = []
    for _ in range(rounds):
        # max_attempts=1: a forged row may ask for any number of attempts, and the ones
        # refused outright end at once anyway; the import error of the last call is
        # an ordinary failure that would otherwise be retried with backoff.
        rows += [Job(name=name, args=args, max_attempts=1) for name, args, _ in calls]
        rows.append(Job(name="tests.faultapp.jobs.ledger", kwargs={"counter": ledger.counter}))
    rows = Job.objects.bulk_create(rows)
    forged = [job for job in rows if job.name != "tests.faultapp.jobs.ledger"]
    normal = [job.pk for job in rows if job.name == "tests.faultapp.jobs.ledger"]
    expected = {name: why for name, _, why in calls}

    env = {**ledger.env, "FAULT_FORBIDDEN_MARKER": str(marker)}
    worker = start_worker("--forever", "--sleep", "0.1", env=env)
    drained = wait_until_drained(timeout=size(60, 300))
    probe = Job.objects.create(
        name="tests.faultapp.jobs_web.loaded",
        args=[[FORBIDDEN_MODULE, "tests.faultapp.jobs_web", "subprocess", "importlib"]],
    )
    wait_for(lambda: Job.objects.get(pk=probe.pk).is_finished, timeout=30)
    probe.refresh_from_db()
    assert worker.process.poll() is None, "the worker stopped"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    stderr = worker.stderr

    # Nothing a forged row named ran, and the forbidden module was never imported.
    assert sorted(path.name for path in traces.iterdir()) == []
    assert not marker.exists(), marker.read_text()
    assert probe.status == Status.SUCCEEDED, probe.last_error
    assert FORBIDDEN_MODULE not in probe.result
    assert "tests.faultapp.jobs_web" in probe.result  # the probe does see imports

    # Every forged row failed after one attempt, with a readable reason on record.
    for job in Job.objects.filter(pk__in=[job.pk for job in forged]):
        assert job.status == Status.FAILED, (job.name, job.status)
        assert job.attempts == 1, job.name
        error = JobError.objects.get(job=job)
        assert expected[job.name] in error.message, (job.name, error.message)
        assert expected[job.name] in job.last_error
    refused = JobError.objects.filter(
        job__in=forged, exception="async_queue.exceptions.JobNotAllowed"
    ).count()
    assert refused == rounds * sum(why != "No module named" for *_, why in calls)

    # The worker went on: every normal job committed exactly once.
    ledger.assert_exactly_once(normal)
    assert "Traceback" not in stderr, stderr  # failures are recorded, never crash the loop
    outcomes = collections.Counter(
        Job.objects.filter(pk__in=[job.pk for job in forged]).values_list("status", flat=True)
    )
    report(
        14,
        "forged rows",
        forged_rows=len(forged),
        names=len(calls),
        normal_jobs=len(normal),
        outcomes=dict(outcomes),
        refused_before_import=refused,
        traces_left=0,
        forbidden_module_imported=FORBIDDEN_MODULE in probe.result,
        also_loaded_in_worker=probe.result,
        seconds=round(drained, 1),
    )
