import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from django.db import transaction
from django.db.transaction import TransactionManagementError
from django.test import override_settings

from async_queue import Conflict, Job, ScheduleError, Status, schedule
from async_queue.locks import busy, hold, lock_id, lock_key, lock_keys, lock_plan
from tests.conftest import ROOT, wait_for
from tests.testapp import tasks
from tests.testapp.models import Counter, Record, Span

pytestmark = pytest.mark.django_db(transaction=True)
FOREVER = ("--forever", "--sleep", "0.1")


def test_lock_keys_of_instances_pairs_strings_and_querysets():
    a = Counter.objects.create(name="a")
    b = Counter.objects.create(name="b")
    assert lock_key(a) == f"testapp.counter:{a.pk}"
    assert lock_key((Counter, str(b.pk))) == f"testapp.counter:{b.pk}"
    assert lock_key(("testapp.Counter", 7)) == "testapp.counter:7"
    assert lock_key("nightly-import") == "nightly-import"
    assert lock_keys([Counter.objects.all(), "x", a]) == sorted(
        [f"testapp.counter:{a.pk}", f"testapp.counter:{b.pk}", "x"]
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (Counter(name="unsaved"), "no primary key"),
        ("", "cannot be empty"),
        (3.5, "Cannot lock 3.5"),
        (("counter", 1), "not a model label"),
        ("k" * 300, "over 255 characters"),
    ],
)
def test_bad_lock_targets_are_refused(target, message):
    with pytest.raises(ScheduleError, match=message):
        lock_keys([target])


@override_settings(ASYNC_QUEUE={"MAX_LOCKS": 3})
def test_too_many_locks_are_refused_at_schedule_time():
    with pytest.raises(ScheduleError, match="4 lock keys are over the limit of 3"):
        schedule(tasks.echo, locks=["a", "b", "c", "d"])
    assert not Job.objects.exists()


def test_lock_ids_are_stable_across_processes_and_distinct_per_model():
    code = "from async_queue.keys import lock_id; print(lock_id('testapp.counter:1'))"
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2", "random")
    }
    assert seen == {str(lock_id("testapp.counter:1"))}
    assert lock_id("testapp.counter:1") != lock_id("testapp.record:1")
    assert -(2**63) <= lock_id("x") < 2**63


@override_settings(ASYNC_QUEUE={"LOCK_ESCALATION": 2})
def test_large_sets_of_one_model_escalate_to_one_model_lock():
    small = lock_plan(["a.b:1", "a.b:2", "plain"])
    assert sorted(small) == small
    assert (lock_id("a.b:*"), False) in small  # shared model lock beside the object locks
    assert {(lock_id(k), True) for k in ("a.b:1", "a.b:2", "plain")} <= set(small)
    assert lock_plan(["a.b:1", "a.b:2", "a.b:3"]) == [(lock_id("a.b:*"), True)]


def test_schedule_stores_lock_keys_and_busy_finds_queued_and_running_jobs():
    counter = Counter.objects.create(name="c")
    other = Counter.objects.create(name="o")
    with transaction.atomic():
        job = schedule(tasks.increment, locks=[counter, "feed"])
    assert job.has_locks
    assert sorted(job.locks.values_list("key", flat=True)) == ["feed", lock_key(counter)]
    assert list(busy(counter)) == [job]
    assert list(busy("feed", other)) == [job]
    assert not busy(other).exists()
    Job.objects.filter(pk=job.pk).update(status=Status.RUNNING)
    assert list(busy(counter)) == [job]
    Job.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED)
    assert not busy(counter).exists()


def test_hold_needs_a_transaction():
    with pytest.raises(TransactionManagementError, match=r"inside transaction\.atomic"), hold("x"):
        pass


def test_hold_refuses_objects_a_queued_job_declared_unless_told_to_ignore_them():
    counter = Counter.objects.create(name="c")
    job = schedule(tasks.increment, locks=[counter])
    with pytest.raises(Conflict) as info, transaction.atomic(), hold(counter):
        pass
    assert info.value.jobs == [job]
    assert f"job {job.pk} (tests.testapp.tasks.increment, queued)" in str(info.value)
    with transaction.atomic(), hold(counter, ignore_queued=True) as keys:
        assert keys == [lock_key(counter)]


def test_hold_raises_conflict_while_a_job_runs_and_succeeds_after(start_worker):
    counter = Counter.objects.create(name="c")
    job = schedule(tasks.span, ["locked", 2.0], locks=[counter])
    worker = start_worker(*FOREVER)
    wait_for(lambda: Job.objects.running().exists())
    with pytest.raises(Conflict) as info, transaction.atomic(), hold(counter):
        pass
    # Refused at once: a wait for the lock would have ended only when the job committed.
    assert Job.objects.get(pk=job.pk).status == Status.RUNNING
    assert [j.pk for j in info.value.jobs] == [job.pk]
    wait_for(lambda: Job.objects.succeeded().exists())
    with transaction.atomic(), hold(counter):
        Counter.objects.filter(pk=counter.pk).update(value=5)
    worker.send_signal(15)
    assert worker.wait() == 0


def test_jobs_locking_the_same_object_never_overlap(start_worker):
    counter = Counter.objects.create(name="shared")
    for n in range(4):
        schedule(tasks.span, [f"s{n}", 0.3], locks=[counter])
    workers = [start_worker(*FOREVER) for _ in range(2)]
    wait_for(lambda: Span.objects.count() == 4, timeout=30)
    spans = sorted(Span.objects.values_list("started", "ended"))
    for (_, first_end), (second_start, _) in itertools.pairwise(spans):
        assert first_end <= second_start
    assert Job.objects.succeeded().count() == 4
    for worker in workers:
        worker.kill()


@pytest.mark.postgres
def test_jobs_on_disjoint_objects_run_in_parallel(start_worker):
    for n in range(2):
        schedule(tasks.span, [f"s{n}", 1.0], locks=[f"object-{n}"])
    workers = [start_worker(*FOREVER) for _ in range(2)]
    wait_for(lambda: Span.objects.count() == 2, timeout=30)
    (_, a_end), (b_start, _) = sorted(Span.objects.values_list("started", "ended"))
    assert b_start < a_end  # they overlapped
    for worker in workers:
        worker.kill()


@pytest.mark.postgres
def test_a_job_whose_object_is_held_is_deferred_not_failed(start_worker):
    counter = Counter.objects.create(name="c")
    job = schedule(tasks.record, ["after the edit"], locks=[counter])
    with transaction.atomic(), hold(counter, ignore_queued=True):
        worker = start_worker(*FOREVER)
        wait_for(lambda: "deferred" in worker.stdout)
        job.refresh_from_db()
        assert (job.status, job.attempts) == (Status.QUEUED, 0)
    wait_for(lambda: Record.objects.exists())
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.SUCCEEDED, 1)
    assert not job.errors.exists()
    worker.kill()


@pytest.mark.postgres
def test_hold_wait_waits_for_another_transaction_up_to_its_limit():
    import threading

    from django.db import connections

    held = threading.Event()
    release = threading.Event()

    def other_request():
        try:
            with transaction.atomic(), hold("report"):
                held.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_request)
    thread.start()
    try:
        assert held.wait(10)
        with (
            pytest.raises(Conflict, match="locked by another transaction"),
            transaction.atomic(),
            hold("report"),
        ):
            pass
        started = time.monotonic()
        with pytest.raises(Conflict), transaction.atomic(), hold("report", wait=0.3):
            pass
        assert time.monotonic() - started > 0.25
        assert thread.is_alive()  # it gave up after its wait, not when the holder let go
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        with transaction.atomic(), hold("report", wait=True):
            assert time.monotonic() - started >= 0.2
    finally:
        release.set()
        thread.join()


@pytest.fixture
def another_writer():
    """SQLite: start() takes the write lock on another connection, as a job's transaction
    does, and gives it up after ``seconds``; it returns whether the lock is still held."""
    import sqlite3
    import threading

    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's single write lock")
    writer = sqlite3.connect(
        connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False
    )
    timers: list[threading.Timer] = []

    def start(seconds: float = 0.5) -> Callable[[], bool]:
        writer.execute("BEGIN IMMEDIATE")
        timers.append(threading.Timer(seconds, writer.execute, ["COMMIT"]))
        timers[-1].start()
        return lambda: writer.in_transaction

    yield start
    for timer in timers:
        timer.cancel()
        timer.join()
    if writer.in_transaction:
        writer.execute("ROLLBACK")
    writer.close()


def test_sqlite_hold_waits_for_another_writer_then_holds(another_writer):
    """A read before the write would make SQLite refuse the wait at once: it must not."""
    another_writer()
    started = time.monotonic()
    with transaction.atomic(), hold("unrelated-object"):
        Record.objects.create(label="after the writer")
    assert time.monotonic() - started >= 0.4
    assert Record.objects.filter(label="after the writer").exists()


def test_sqlite_hold_refuses_at_once_what_a_running_job_declared(another_writer):
    job = schedule(tasks.record, ["x"], locks=["held-object"], on_commit=False)
    Job.objects.filter(pk=job.pk).update(status=Status.RUNNING)
    writer_holds = another_writer(seconds=10)
    with pytest.raises(Conflict) as info, transaction.atomic(), hold("held-object"):
        pass
    assert writer_holds()  # refused at once, not after the other writer's commit
    assert [j.pk for j in info.value.jobs] == [job.pk]
