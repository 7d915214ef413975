"""Unique jobs: the database refuses a second queued or running job with the same key."""

import threading

import pytest
from django.db import connections, transaction

from async_queue import Job, ScheduleError, Status, schedule
from tests.testapp import tasks

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
