import pytest

from async_queue import InvalidJobState, Job, Status, schedule
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_querysets_per_state():
    queued = schedule(tasks.echo)
    failed = Job.objects.create(name="tests.testapp.tasks.echo", status=Status.FAILED)
    assert list(Job.objects.queued()) == [queued]
    assert list(Job.objects.due()) == [queued]
    assert list(Job.objects.failed()) == [failed]
    assert list(Job.objects.finished()) == [failed]
    assert str(queued) == f"#{queued.pk} tests.testapp.tasks.echo (queued)"


def test_names_are_the_distinct_names_in_order_up_to_a_limit():
    assert Job.objects.names(10) == []
    for name in ("c", "a", "b", "a", "c"):
        Job.objects.create(name=f"tests.testapp.tasks.{name}")
    names = [f"tests.testapp.tasks.{name}" for name in "abc"]
    assert Job.objects.names(10) == names
    assert Job.objects.names(2) == names[:2]
    # Of the whole table, whatever the queryset's filters.
    assert Job.objects.filter(name=names[0]).names(10) == names


def test_cancel_only_a_queued_job():
    job = schedule(tasks.echo)
    job.cancel()
    assert job.status == Status.CANCELLED
    assert job.finished_at is not None
    assert job.is_finished
    with pytest.raises(InvalidJobState, match="is cancelled; expected queued"):
        job.cancel()


def test_retry_a_failed_job_grants_one_more_attempt():
    job = schedule(tasks.fail, max_attempts=1)
    job.execute()
    assert job.status == Status.FAILED
    job.retry()
    assert (job.status, job.max_attempts, job.finished_at) == (Status.QUEUED, 2, None)
    assert job.execute().status == Status.FAILED
    assert job.errors.count() == 2
    with pytest.raises(InvalidJobState):
        schedule(tasks.echo).retry()
