"""Many real worker processes against one database: exactly once, crash recovery, wake-ups."""

import signal
import time

import pytest
from django.db import connection

from async_queue import Job, JobError, Status, schedule, schedule_many
from tests.conftest import wait_for
from tests.testapp import tasks
from tests.testapp.models import Record

pytestmark = pytest.mark.django_db(transaction=True)
FOREVER = ("--forever", "--sleep", "0.1")


def test_several_workers_run_each_of_1000_jobs_exactly_once(start_worker):
    schedule_many(("tests.testapp.tasks.record", [str(n)]) for n in range(1000))
    workers = [start_worker("-v", "0") for _ in range(3)]  # cron-style drains, concurrently
    for worker in workers:
        assert worker.wait(timeout=240) == 0, worker.stderr
    labels = list(Record.objects.values_list("label", flat=True))
    assert len(labels) == 1000
    assert sorted(labels, key=int) == [str(n) for n in range(1000)]
    assert Job.objects.succeeded().count() == 1000
    assert set(Job.objects.values_list("attempts", flat=True)) == {1}


def test_the_job_of_a_killed_worker_is_requeued_by_a_live_one(start_worker):
    job = schedule(tasks.sleep, [30], max_attempts=2)
    doomed = start_worker(*FOREVER)
    wait_for(lambda: Job.objects.running().exists())
    doomed.kill()
    killed_at = time.monotonic()
    rescuer = start_worker(*FOREVER, "--queue", "elsewhere")  # recovers, but runs nothing
    wait_for(lambda: Job.objects.queued().filter(pk=job.pk).exists(), timeout=10)
    assert time.monotonic() - killed_at < 5
    job.refresh_from_db()
    assert job.attempts == 1  # the lost attempt counts
    error = job.errors.get()
    assert "was lost while running this job" in error.message
    rescuer.kill()


def test_recovery_never_takes_a_live_workers_job(start_worker):
    job = schedule(tasks.sleep, [3])
    runner = start_worker(*FOREVER)
    wait_for(lambda: Job.objects.running().exists())
    watcher = start_worker(*FOREVER, "--queue", "elsewhere")  # recovery every 0.5 s
    wait_for(lambda: Job.objects.succeeded().exists(), timeout=20)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.SUCCEEDED, 1)
    assert not JobError.objects.exists()
    for worker in (runner, watcher):
        worker.send_signal(signal.SIGTERM)
        assert worker.wait() == 0


@pytest.mark.postgres
def test_listen_notify_wakes_an_idle_worker_at_commit(start_worker):
    worker = start_worker("--forever", "--sleep", "30")
    schedule(tasks.record, ["warm-up"])
    wait_for(lambda: Record.objects.exists())
    time.sleep(0.5)  # now idle, listening, with 30 s before its next poll
    latencies = []
    for n in range(5):
        scheduled = time.monotonic()
        schedule(tasks.record, [str(n)])
        wait_for(lambda n=n: Record.objects.filter(label=str(n)).exists(), timeout=5)
        latencies.append(time.monotonic() - scheduled)
    # Woken by the notification: a poll would have taken 30 s.
    assert max(latencies) < 5, latencies
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_polling_fallback_picks_up_a_job_within_one_interval(start_worker):
    import datetime as dt

    worker = start_worker("--forever", "--sleep", "0.5")
    schedule(tasks.record, ["warm-up"])
    wait_for(lambda: Record.objects.exists())  # the worker has started and is polling
    due = time.monotonic() + 1
    schedule(tasks.record, ["late"], run_after=dt.timedelta(seconds=1))
    wait_for(lambda: Record.objects.filter(label="late").exists(), timeout=10)
    # No notification says when it becomes due: only a poll finds it, a few 0.5 s polls
    # after it became due at most, even on a busy machine.
    assert time.monotonic() - due < 5
    worker.kill()


@pytest.mark.parametrize(
    ("function", "args"),
    [
        (tasks.sleep, [30]),
        (tasks.spin, [30]),
        (tasks.swallow_everything, [30]),
        pytest.param(tasks.pg_sleep, [30], marks=pytest.mark.postgres),
    ],
)
def test_a_job_past_its_timeout_fails_and_the_worker_goes_on(start_worker, function, args):
    stuck = schedule(function, args, timeout=1, max_attempts=1)
    after = schedule(tasks.record, ["after"])
    started = time.monotonic()
    worker = start_worker(*FOREVER)
    wait_for(lambda: Record.objects.exists(), timeout=20)
    stuck.refresh_from_db()
    assert stuck.status == Status.FAILED
    assert "timed out after 1s" in stuck.last_error
    assert stuck.duration.total_seconds() < 10  # stopped at its 1 s limit, not after 30 s
    assert time.monotonic() - started < 10
    after.refresh_from_db()
    assert after.status == Status.SUCCEEDED
    worker.kill()


def test_a_group_completion_job_runs_after_every_other_job_of_the_group():
    from async_queue import JobGroup
    from async_queue.worker import Worker

    group = JobGroup.objects.create(reference="import-42")
    final = schedule(tasks.record, ["final"], group=group, priority=100)
    group.on_completion(final)
    members = [schedule(tasks.record, [str(n)], group=group) for n in range(3)]
    failing = schedule(tasks.fail, group=group, max_attempts=2)
    with Worker() as worker:
        worker.drain()
        assert not Record.objects.filter(label="final").exists()  # the failing job will retry
        Job.objects.filter(pk=failing.pk).update(run_after=Job.objects.get(pk=final.pk).run_after)
        worker.drain()
    labels = list(Record.objects.order_by("id").values_list("label", flat=True))
    assert labels[-1] == "final"
    assert sorted(labels[:-1]) == ["0", "1", "2"]
    assert {j.pk for j in Job.objects.succeeded()} == {final.pk, *(m.pk for m in members)}


def test_schedule_many_writes_all_rows_with_one_insert_per_batch():
    import math

    from django.test.utils import CaptureQueriesContext

    calls = [("tests.testapp.tasks.record", [str(n)]) for n in range(50)]
    calls.append({"function": tasks.echo, "locks": ["a", "b"], "priority": 5})
    with CaptureQueriesContext(connection) as queries:
        jobs = schedule_many(calls, queue="bulk")
    # One reading of the database clock, one INSERT per batch the backend allows
    # (one on Django 6; SQLite on Django 5.2 still assumes 999 parameters), one
    # for the lock rows, in one transaction.
    batch = connection.ops.bulk_batch_size(Job._meta.concrete_fields, jobs) or len(jobs)
    statements = [q["sql"].split("(")[0].strip() for q in queries.captured_queries]
    assert statements == [
        "BEGIN",
        "SELECT STATEMENT_TIMESTAMP" if connection.vendor == "postgresql" else "SELECT STRFTIME",
        *['INSERT INTO "async_queue_job"'] * math.ceil(len(jobs) / batch),
        'INSERT INTO "async_queue_joblock"',
        "COMMIT",
    ]
    assert len(jobs) == 51
    assert all(job.pk for job in jobs)
    assert set(Job.objects.values_list("queue", flat=True)) == {"bulk"}
    assert sorted(jobs[-1].locks.values_list("key", flat=True)) == ["a", "b"]


def test_schedule_many_validates_every_call_before_writing():
    from async_queue import ScheduleError

    with pytest.raises(ScheduleError, match=r"calls\[1\]: .*outside the installed apps"):
        schedule_many([(tasks.echo, [1]), ("os.system", ["ls"])])
    with pytest.raises(ScheduleError, match=r"calls\[0\] must be a"):
        schedule_many(["tests.testapp.tasks.echo"])
    assert not Job.objects.exists()
    assert connection.in_atomic_block is False


@pytest.mark.postgres
def test_a_worker_survives_losing_its_connection_while_idle(start_worker):
    worker = start_worker("--forever", "--sleep", "5")
    schedule(tasks.record, ["first"])
    wait_for(lambda: Record.objects.exists())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    schedule(tasks.record, ["second"])
    wait_for(lambda: Record.objects.filter(label="second").exists(), timeout=15)
    assert worker.process.poll() is None  # still running
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0
