"""Row 19: only declared jobs run; the gadget functions of installed apps call nothing.

``django.contrib.auth`` is an installed app, and some of its module-level
functions import and call whatever dotted path they are handed. Each gadget
below is first shown to be real (called directly, in this process, it leaves a
trace or imports ``tests.forbidden``); then the same call is tried through
``schedule()`` (refused at once, nothing written), through forged rows run by a
real ``flush_queue`` worker (each fails at its first attempt with the fix on
record, and calls nothing), and through the ``django.tasks`` backend's
``get_result()`` (no import). Ledger jobs interleaved with the forged rows show
the worker keeps going and commits each of them exactly once.
"""

from __future__ import annotations

import collections
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import django
import pytest

from async_queue import Job, JobError, ScheduleError, Status, schedule
from async_queue.exceptions import JobNotAllowed
from tests.conftest import ROOT, child_env, wait_for
from tests.faults.conftest import Ledger, report, size, wait_until_drained

pytestmark = pytest.mark.django_db(transaction=True)

FORBIDDEN = "tests.forbidden"
NOT_DECLARED = r"not a declared job.*decorate it with @async_queue\.job"


def gadgets(traces: Path) -> list[tuple[str, list[object]]]:
    """``(name, args)``: each would leave a file in ``traces`` (or import FORBIDDEN) if run."""
    return [
        # The finding's shell command, and a call that surely leaves a trace.
        (
            "django.contrib.auth.password_validation.get_password_validators",
            [[{"NAME": "os.system", "OPTIONS": {"command": f"touch {traces}/system"}}]],
        ),
        (
            "django.contrib.auth.password_validation.get_password_validators",
            [[{"NAME": f"{FORBIDDEN}.Touch", "OPTIONS": {"path": f"{traces}/validators"}}]],
        ),
        ("django.contrib.auth.load_backend", [f"{FORBIDDEN}.Touch"]),
        ("django.contrib.auth.hashers.import_string", [f"{FORBIDDEN}.touch"]),
        ("django.utils.module_loading.import_string", [f"{FORBIDDEN}.touch"]),
        # An ordinary function of an installed app that nobody declared.
        ("tests.testapp.tasks.undeclared", []),
    ]


def gadget_is_real(name: str, args: list[object], traces: Path, marker: Path) -> bool:
    """Call the gadget in a fresh interpreter: does it leave a trace or import FORBIDDEN?"""
    code = (
        "import importlib, json, sys, django; django.setup(); "
        "module, _, attr = sys.argv[1].rpartition('.'); "
        "getattr(importlib.import_module(module), attr)(*json.loads(sys.argv[2]))"
    )
    env = {
        **child_env(),
        "FAULT_FORBIDDEN_MARKER": str(marker),
        "FAULT_TRACE": str(traces / "direct"),
    }
    subprocess.run(
        [sys.executable, "-c", code, name, json.dumps(args)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    left = marker.exists() or any(traces.iterdir())
    for path in [marker, *traces.iterdir()]:
        path.unlink(missing_ok=True)
    return left


def test_only_declared_jobs_run_and_gadgets_call_nothing(
    ledger: Ledger, tmp_path: Path, start_worker
):
    traces = tmp_path / "traces"
    traces.mkdir()
    marker = tmp_path / "forbidden-imported"
    calls = gadgets(traces)

    # The gadgets are real: called directly, all but the plain function reach tests.forbidden
    # or the shell.
    real = [name for name, args in calls if gadget_is_real(name, args, traces, marker)]
    assert len(real) == len(calls) - 1, real

    # schedule() refuses each one at once, naming the fix; nothing is written.
    refused_at_schedule = 0
    for name, args in calls:
        with pytest.raises(JobNotAllowed, match=NOT_DECLARED):
            schedule(name, args, on_commit=False)
        refused_at_schedule += 1
    with pytest.raises(ScheduleError, match="outside the installed apps"):
        schedule("os.system", ["true"], on_commit=False)
    assert not Job.objects.exists()
    assert FORBIDDEN not in sys.modules

    # Forged rows, run by a real worker, fail at their first attempt and call nothing.
    rounds = int(size(5, 100))
    rows: list[Job] = []
    for _ in range(rounds):
        rows += [Job(name=name, args=args, max_attempts=5) for name, args in calls]
        rows.append(Job(name="tests.faultapp.jobs.ledger", kwargs={"counter": ledger.counter}))
    ledger.schedule(0)  # creates the counter row
    rows = Job.objects.bulk_create(rows)
    forged = [job.pk for job in rows if job.name != "tests.faultapp.jobs.ledger"]
    normal = [job.pk for job in rows if job.name == "tests.faultapp.jobs.ledger"]
    env = {**ledger.env, "FAULT_FORBIDDEN_MARKER": str(marker), "FAULT_TRACE": str(traces / "w")}
    worker = start_worker("--forever", "--sleep", "0.1", env=env)
    drained = wait_until_drained(timeout=size(60, 300))
    probe = schedule("tests.faultapp.jobs_web.loaded", [[FORBIDDEN, "os"]], on_commit=False)
    wait_for(lambda: Job.objects.get(pk=probe.pk).is_finished, timeout=30)
    probe.refresh_from_db()
    assert worker.process.poll() is None, "the worker stopped"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0

    assert sorted(path.name for path in traces.iterdir()) == []
    assert not marker.exists(), marker.read_text()
    assert probe.result == ["os"], probe.result  # FORBIDDEN never imported in the worker
    outcomes = collections.Counter(
        Job.objects.filter(pk__in=forged).values_list("status", "attempts")
    )
    assert outcomes == {(Status.FAILED, 1): len(forged)}, outcomes
    errors = JobError.objects.filter(job_id__in=forged)
    assert errors.count() == len(forged)
    assert set(errors.values_list("exception", flat=True)) == {
        "async_queue.exceptions.JobNotAllowed"
    }
    assert all(re.search(NOT_DECLARED, text) for text in errors.values_list("message", flat=True))
    ledger.assert_exactly_once(normal)
    assert "Traceback" not in worker.stderr, worker.stderr

    # The django.tasks backend reads such a row without importing what it names.
    tasks_refused = 0
    if django.VERSION >= (6, 0):
        from django.tasks import default_task_backend
        from django.tasks.exceptions import TaskResultDoesNotExist

        backend_rows = [
            Job.objects.create(name=name, args=args, meta={"django_task_backend": "default"})
            for name, args in [*calls, ("tests.forbidden.touch", [str(traces / "x")])]
        ]
        for row in backend_rows:
            with pytest.raises(TaskResultDoesNotExist):
                default_task_backend.get_result(str(row.pk))
            tasks_refused += 1
        assert FORBIDDEN not in sys.modules
        assert not any(traces.iterdir())

    report(
        19,
        "only declared jobs run",
        gadgets=len(calls) - 1,
        gadgets_shown_real=len(real),
        refused_at_schedule=refused_at_schedule,
        forged_rows=len(forged),
        forged_outcomes={f"{s}/{a}": n for (s, a), n in outcomes.items()},
        normal_jobs=len(normal),
        traces_left=0,
        forbidden_imported_in_worker=False,
        get_result_refused=tasks_refused,
        seconds=round(drained, 2),
    )
