"""Unique jobs: the database refuses a second queued or running job with the same key,
and (``unique_for``) a second job with the same key within a window."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.db.models.functions import Now

from async_queue import Job, ScheduleError, Status, maintenance, schedule, schedule_many
from async_queue.models import UniqueWindow
from async_queue.scheduling import build_job
from async_queue.unique import prune_windows, unique_window
from tests.testapp import tasks

HOUR = timedelta(hours=1)

pytestmark = pytest.mark.django_db(transaction=True)


def test_unique_returns_the_existing_queued_job():
    first = schedule(tasks.echo, [1], unique=True)
    second = schedule(tasks.echo, [1], unique=True)
    other_args = schedule(tasks.echo, [2], unique=True)
    assert second.pk == first.pk
    assert second.deduplicated
    assert not first.deduplicated
    assert other_args.pk != first.pk
    assert Job.objects.count() == 2


def test_a_finished_job_frees_its_key():
    first = schedule(tasks.echo, unique_key="nightly")
    first.execute()
    second = schedule(tasks.echo, unique_key="nightly")
    assert second.pk != first.pk
    assert Job.objects.filter(unique_key="nightly").count() == 2


def test_a_running_job_keeps_its_key():
    first = schedule(tasks.echo, unique_key="k")
    Job.objects.filter(pk=first.pk).update(status=Status.RUNNING)
    assert schedule(tasks.echo, unique_key="k").pk == first.pk


def test_inside_a_transaction_the_existing_job_is_known_at_commit():
    first = schedule(tasks.echo, unique_key="k")
    with transaction.atomic():
        pending = schedule(tasks.echo, unique_key="k")
        assert pending.pk is None
    assert pending.pk == first.pk


def test_bad_unique_key():
    with pytest.raises(ScheduleError, match="unique_key must be"):
        schedule(tasks.echo, unique_key="")


def test_ten_concurrent_schedulers_make_one_row():
    barrier = threading.Barrier(10)
    pks, errors = [], []

    def scheduler():
        try:
            barrier.wait(10)
            pks.append(schedule(tasks.echo, ["report"], unique=True).pk)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=scheduler) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Job.objects.count() == 1
    assert set(pks) == {Job.objects.get().pk}


# -- unique_for: at most one job per key per window ----------------------------------------


def close_window(key: str) -> None:
    """Move a window's end into the past, as if its time had run out."""
    UniqueWindow.objects.filter(key=key).update(until=Now() - timedelta(seconds=1))


def test_a_second_schedule_inside_the_window_returns_the_first_job():
    first = schedule(tasks.echo, [1], unique_for=HOUR)
    second = schedule(tasks.echo, [1], unique_for=HOUR)
    other_args = schedule(tasks.echo, [2], unique_for=HOUR)
    assert not first.deduplicated
    assert second.deduplicated
    assert second.pk == first.pk
    assert other_args.pk != first.pk
    assert Job.objects.count() == 2
    window = UniqueWindow.objects.get(job_id=first.pk)
    assert window.key == unique_window(build_job(tasks.echo, [1], unique_for=HOUR)).key
    written_at = Job.objects.get(pk=first.pk).created_at
    assert abs(window.until - (written_at + HOUR)) < timedelta(seconds=5)


def test_the_window_outlives_the_job_that_opened_it():
    first = schedule(tasks.echo, unique_key="digest", unique_for=HOUR)
    first.execute()
    assert first.status == Status.SUCCEEDED
    again = schedule(tasks.echo, unique_key="digest", unique_for=HOUR)
    assert again.deduplicated
    assert again.pk == first.pk
    assert again.status == Status.SUCCEEDED  # the job as it is now
    assert Job.objects.count() == 1


def test_after_the_window_the_next_schedule_opens_a_new_one():
    first = schedule(tasks.echo, unique_key="digest", unique_for=HOUR)
    close_window("digest")
    second = schedule(tasks.echo, unique_key="digest", unique_for=HOUR)
    assert not second.deduplicated
    assert second.pk != first.pk
    # The new window is the second job's, and holds for another hour.
    assert UniqueWindow.objects.get(key="digest").job_id == second.pk
    assert schedule(tasks.echo, unique_key="digest", unique_for=HOUR).pk == second.pk


def test_a_short_window_closes_on_the_database_clock():
    window = timedelta(milliseconds=300)
    first = schedule(tasks.echo, unique_key="short", unique_for=window)
    assert schedule(tasks.echo, unique_key="short", unique_for=window).pk == first.pk
    time.sleep(0.4)
    later = schedule(tasks.echo, unique_key="short", unique_for=window)
    assert not later.deduplicated
    assert later.pk != first.pk


def test_the_key_is_unique_key_if_given_else_the_name_and_arguments():
    first = schedule(tasks.echo, [1], unique_key="k", unique_for=HOUR)
    assert schedule(tasks.echo, [2], unique_key="k", unique_for=HOUR).pk == first.pk
    # unique=True with unique_for is the same as unique_for alone.
    by_arguments = schedule(tasks.echo, [1], unique=True, unique_for=HOUR)
    assert by_arguments.pk != first.pk
    assert schedule(tasks.echo, [1], unique_for=HOUR).pk == by_arguments.pk


def test_the_window_alone_governs_a_unique_for_job():
    """The window replaces the queued-or-running rule: the job carries no unique_key,
    so a plain unique job with the same key and a windowed one do not meet."""
    windowed = schedule(tasks.echo, unique_key="k", unique_for=HOUR)
    assert windowed.unique_key is None
    plain = schedule(tasks.echo, unique_key="k")
    assert plain.pk != windowed.pk
    assert not plain.deduplicated
    # After the window, a second windowed job is written though the first is still queued.
    close_window("k")
    assert schedule(tasks.echo, unique_key="k", unique_for=HOUR).pk not in (windowed.pk, plain.pk)
    assert Job.objects.filter(status=Status.QUEUED).count() == 3


def test_inside_a_transaction_the_window_is_met_at_commit():
    first = schedule(tasks.echo, unique_key="k", unique_for=HOUR)
    with transaction.atomic():
        pending = schedule(tasks.echo, unique_key="k", unique_for=HOUR)
        assert pending.pk is None
    assert pending.deduplicated
    assert pending.pk == first.pk


def test_a_rolled_back_schedule_does_not_consume_the_window():
    with transaction.atomic():
        schedule(tasks.echo, unique_key="k", unique_for=HOUR)  # written at commit: never
        transaction.set_rollback(True)
    with pytest.raises(RuntimeError), transaction.atomic():
        schedule(tasks.echo, unique_key="k", unique_for=HOUR, on_commit=False)
        assert UniqueWindow.objects.filter(key="k").exists()
        raise RuntimeError("the caller's transaction fails")
    assert not UniqueWindow.objects.exists()
    assert not Job.objects.exists()
    # A savepoint rolled back inside a transaction that commits: the same.
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            schedule(tasks.echo, unique_key="k", unique_for=HOUR, on_commit=False)
            raise RuntimeError("the savepoint fails")
        kept = schedule(tasks.echo, unique_key="k", unique_for=HOUR, on_commit=False)
    assert not kept.deduplicated
    assert list(Job.objects.values_list("pk", flat=True)) == [kept.pk]
    assert UniqueWindow.objects.get(key="k").job_id == kept.pk


def test_a_window_reopened_and_rolled_back_stays_as_it_was():
    first = schedule(tasks.echo, unique_key="k", unique_for=HOUR)
    close_window("k")
    closed = UniqueWindow.objects.get(key="k")
    with pytest.raises(RuntimeError), transaction.atomic():
        schedule(tasks.echo, unique_key="k", unique_for=HOUR, on_commit=False)
        raise RuntimeError("the caller's transaction fails")
    assert UniqueWindow.objects.get(key="k").until == closed.until
    assert UniqueWindow.objects.get(key="k").job_id == first.pk
    assert not schedule(tasks.echo, unique_key="k", unique_for=HOUR).deduplicated


def test_a_job_that_fails_to_write_leaves_no_window(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("no room")

    monkeypatch.setattr(Job, "save", refuse)
    with pytest.raises(RuntimeError, match="no room"):
        schedule(tasks.echo, unique_key="k", unique_for=HOUR)
    assert not UniqueWindow.objects.exists()


def test_a_deleted_opener_still_holds_its_window():
    """Nothing is written; the returned Job carries the deleted job's id."""
    first = schedule(tasks.echo, [1], unique_for=HOUR)
    Job.objects.filter(pk=first.pk).delete()
    again = schedule(tasks.echo, [1], unique_for=HOUR)
    assert again.deduplicated
    assert again.pk == first.pk
    assert not Job.objects.exists()
    with pytest.raises(Job.DoesNotExist):
        again.refresh_from_db()


def test_schedule_many_with_unique_for():
    jobs = schedule_many(
        [
            (tasks.echo, [1]),
            (tasks.echo, [1]),  # meets the window the call before opened
            (tasks.echo, [2]),
            {"function": tasks.echo, "args": [3], "unique_for": None},  # no window
            {"function": tasks.echo, "args": [3], "unique_for": None},
        ],
        unique_for=HOUR,
    )
    assert [job.deduplicated for job in jobs[:3]] == [False, True, False]
    assert jobs[1].pk == jobs[0].pk
    assert jobs[3].pk != jobs[4].pk
    assert Job.objects.count() == 4
    again = schedule_many([(tasks.echo, [1]), {"function": tasks.echo, "unique_for": HOUR}])
    assert again[0].pk != jobs[0].pk  # no unique_for: a job of its own
    with transaction.atomic():
        pending = schedule_many([(tasks.echo, [2])], unique_for=HOUR)
    assert pending[0].pk == jobs[2].pk
    assert Job.objects.count() == 6


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (300, r"positive timedelta; got int 300\. Pass timedelta\(seconds=300\)"),
        ("1h", "positive timedelta; got str '1h'"),
        (timedelta(0), "positive timedelta of at most 36525 days; got datetime.timedelta\\(0\\)"),
        (-HOUR, "positive timedelta of at most"),
        (timedelta(days=36526), "positive timedelta of at most"),
    ],
)
def test_bad_unique_for(value, message):
    with pytest.raises(ScheduleError, match=f"unique_for must be a {message}"):
        schedule(tasks.echo, unique_for=value)
    with pytest.raises(ScheduleError, match=r"calls\[1\]: unique_for must be"):
        schedule_many([(tasks.echo,), {"function": tasks.echo, "unique_for": value}])
    assert not Job.objects.exists()
    assert not UniqueWindow.objects.exists()


def test_purge_deletes_closed_windows_only():
    schedule(tasks.echo, unique_key="open", unique_for=HOUR)
    for key in ("closed-1", "closed-2"):
        schedule(tasks.echo, unique_key=key, unique_for=HOUR)
        close_window(key)
    assert prune_windows() == 2
    assert list(UniqueWindow.objects.values_list("key", flat=True)) == ["open"]
    close_window("open")
    maintenance.purge(timedelta(days=1))
    assert not UniqueWindow.objects.exists()
    assert Job.objects.count() == 3  # queued jobs are not purged


def test_prune_windows_in_batches():
    schedule_many([(tasks.echo, [n]) for n in range(5)], unique_for=HOUR)
    UniqueWindow.objects.update(until=Now() - timedelta(seconds=1))
    assert prune_windows(batch=2) == 5
    assert not UniqueWindow.objects.exists()


ROUNDS = 20
SCHEDULERS = 10


def test_ten_concurrent_schedulers_write_one_job_per_key_per_window():
    """Each round, ten schedulers (threads, each on its own connection) schedule the
    same two keys at once: one whose closed window they all try to reopen, and a key
    no window has had yet. Some call schedule() outside a transaction, some inside
    one (the job is written at commit), some schedule_many() with both keys in one
    transaction; half take the keys in the other order. Exactly one job per key and
    round is written, every scheduler gets it, and none fails (no deadlock)."""
    results: dict[tuple[int, str], list[Job]] = {}
    errors: list[BaseException] = []
    rounds = iter(range(ROUNDS + 1))
    current = [0]

    def next_round() -> None:  # run by one thread while all wait at the barrier
        current[0] = next(rounds)
        close_window("shared")

    barrier = threading.Barrier(SCHEDULERS, action=next_round)

    def scheduler(index: int) -> None:
        try:
            for _ in range(ROUNDS):
                barrier.wait(30)
                number = current[0]
                keys = ["shared", f"fresh-{number}"][:: 1 if index % 2 else -1]
                calls = [{"function": tasks.echo, "args": [number], "unique_key": k} for k in keys]
                if index % 3 == 0:
                    jobs = schedule_many(calls, unique_for=HOUR)
                elif index % 3 == 1:
                    jobs = [schedule(**call, unique_for=HOUR) for call in calls]
                else:
                    with transaction.atomic():
                        jobs = [schedule(**call, unique_for=HOUR) for call in calls]
                for key, job in zip(keys, jobs, strict=True):
                    results.setdefault((number, key), []).append(job)
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=scheduler, args=(n,)) for n in range(SCHEDULERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 2 * ROUNDS
    for (number, key), jobs in results.items():
        assert len(jobs) == SCHEDULERS
        assert len({job.pk for job in jobs}) == 1, (number, key)
        assert sum(not job.deduplicated for job in jobs) == 1, (number, key)
        assert Job.objects.get(pk=jobs[0].pk).args == [number]
    duplicates = Job.objects.count() - 2 * ROUNDS
    assert duplicates == 0
