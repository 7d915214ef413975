"""flush_queue as a real process: output, resilience to bad jobs, signals."""

import logging
import os
import signal
import time

import pytest

from async_queue import Job, Status, schedule
from tests.conftest import wait_for
from tests.testapp import tasks
from tests.testapp.models import Counter, Record

pytestmark = pytest.mark.django_db(transaction=True)


def test_drains_due_jobs_prints_one_line_each_and_exits_0(manage):
    jobs = [schedule(tasks.record, [str(n)]) for n in range(3)]
    result = manage("flush_queue")
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for job, line in zip(jobs, lines, strict=True):
        assert line.startswith(f"job {job.pk} tests.testapp.tasks.record succeeded after ")
        assert line.endswith("s")
    assert Record.objects.count() == 3
    assert manage("flush_queue").stdout == ""  # nothing due: exits 0 at once


def test_quiet_with_verbosity_0_and_jobs_limit(manage):
    for n in range(3):
        schedule(tasks.record, [str(n)])
    assert manage("flush_queue", "--jobs", "2", "-v", "0").stdout == ""
    assert Record.objects.count() == 2


def test_verbosity_0_prints_nothing_for_a_failed_job(manage):
    schedule(tasks.fail, max_attempts=1)
    result = manage("flush_queue", "-v", "0")
    assert (result.stdout, result.stderr) == ("", "")


def test_verbosity_1_prints_a_failed_job_once_on_each_stream(manage):
    job = schedule(tasks.fail, max_attempts=1)
    result = manage("flush_queue")
    assert result.stdout.startswith(f"job {job.pk} tests.testapp.tasks.fail failed after ")
    # The error, for those who read stderr only (cron mail); not the event line as well.
    assert result.stderr == f"Job {job.pk} tests.testapp.tasks.fail failed: RuntimeError: boom\n"


def test_a_failed_job_still_reaches_the_projects_log_handlers_with_verbosity_0(caplog):
    from django.core.management import call_command

    job = schedule(tasks.fail, max_attempts=1)
    with caplog.at_level(logging.ERROR, logger="async_queue"):
        call_command("flush_queue", verbosity=0)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"Job {job.pk} tests.testapp.tasks.fail failed: RuntimeError: boom"
    ]


def test_survives_raising_exiting_and_forged_jobs(manage):
    raising = schedule(tasks.fail, max_attempts=1)
    exiting = schedule(tasks.call_exit, max_attempts=1)
    forged = Job.objects.create(name="os.system", args=["touch /tmp/async-queue-pwned"])
    after = schedule(tasks.increment, kwargs={"name": "after"})
    result = manage("flush_queue")
    outcomes = {line.split()[1]: line.split()[3] for line in result.stdout.splitlines()}
    assert outcomes == {
        str(raising.pk): "failed",
        str(exiting.pk): "failed",
        str(forged.pk): "failed",
        str(after.pk): "succeeded",
    }
    forged.refresh_from_db()
    assert "'os.system' is not a declared job" in forged.last_error
    assert not os.path.exists("/tmp/async-queue-pwned")
    assert Counter.objects.get(name="after").value == 1


def test_failed_attempts_follow_backoff_and_are_not_rerun_in_the_same_drain(manage):
    job = schedule(tasks.fail, max_attempts=3)
    result = manage("flush_queue")
    assert "retrying" in result.stdout
    assert result.stdout.count("\n") == 1
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.QUEUED, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--jobs", "0"], "--jobs must be at least 1"), (["--sleep", "0"], "--sleep must be")],
)
def test_bad_options_are_refused(manage, args, message):
    result = manage("flush_queue", *args, check=False)
    assert result.returncode == 1
    assert message in result.stderr


FOREVER = ("--forever", "--sleep", "0.1")


def test_forever_picks_up_new_and_delayed_jobs_and_stops_at_max_seconds(start_worker):
    import datetime as dt

    worker = start_worker(*FOREVER, "--max-seconds", "6")
    schedule(tasks.record, ["now"])
    schedule(tasks.record, ["soon"], run_after=dt.timedelta(seconds=1))
    wait_for(lambda: Record.objects.count() == 2)
    assert worker.wait(timeout=20) == 0
    assert list(Record.objects.order_by("id").values_list("label", flat=True)) == ["now", "soon"]


def test_sigterm_lets_the_running_job_finish_then_exits_0(start_worker):
    job = schedule(tasks.sleep, [1.5])
    worker = start_worker(*FOREVER)
    wait_for(lambda: Job.objects.running().exists())
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED


def test_a_second_signal_aborts_the_job_which_is_rolled_back_and_requeued(start_worker):
    job = schedule(tasks.sleep, [30])
    worker = start_worker(*FOREVER)
    wait_for(lambda: Job.objects.running().exists())
    started = time.monotonic()
    worker.send_signal(signal.SIGINT)
    time.sleep(0.3)
    worker.send_signal(signal.SIGINT)
    assert worker.wait(timeout=20) == 1
    assert time.monotonic() - started < 10
    # The stop that was asked for, said plainly: not a "CommandError:" line.
    assert worker.stderr == (
        f"Stopped: job {job.pk} was interrupted, rolled back and requeued (aborted by SIGINT).\n"
    )
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.QUEUED, 1)
    error = job.errors.get()
    assert error.exception == "async_queue.exceptions.WorkerAborted"
    assert "aborted by SIGINT" in error.message


def test_which_and_outof_are_accepted_for_compatibility_and_explained(manage):
    schedule(tasks.record, ["x"])
    manage("flush_queue", "--which", "1", "--outof", "4")
    assert Record.objects.count() == 1
    assert "SKIP LOCKED" in manage("flush_queue", "--help").stdout
