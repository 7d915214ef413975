import logging

import pytest
from django.db import transaction

from async_queue import cancel, schedule
from async_queue.signals import SIGNALS, send_event
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def events():
    seen = []

    def record(sender, job, payload, **kwargs):
        seen.append((payload["event"], job.pk, payload))

    for signal in SIGNALS.values():
        signal.connect(record, dispatch_uid="test-recorder")
    yield seen
    for signal in SIGNALS.values():
        signal.disconnect(dispatch_uid="test-recorder")


def kinds(events, job):
    return [event for event, pk, _ in events if pk == job.pk]


def test_success_fires_each_event_once_in_order(events):
    with transaction.atomic():
        job = schedule(tasks.count_to, [3], locks=["feed"])
        assert events == []  # nothing before the row is written
    job.execute()
    assert kinds(events, job) == [
        "scheduled",
        "started",
        "progress",  # the first report is always written
        "progress",  # and the final one
        "succeeded",
        "cleanup",
    ]
    payloads = {event: payload for event, _, payload in events}
    assert payloads["scheduled"]["locks"] == ["feed"]
    assert payloads["scheduled"]["status"] == "queued"
    assert payloads["started"]["status"] == "running"
    assert payloads["progress"]["progress"] == {"current": 3, "total": 3, "message": "step 3"}
    assert payloads["succeeded"]["result"] == 3
    assert payloads["succeeded"]["status"] == "succeeded"
    assert payloads["cleanup"]["attempt"] == 1


def test_retry_then_failure(events):
    job = schedule(tasks.fail, ["nope"], max_attempts=2)
    job.execute()
    from async_queue import Job

    Job.objects.filter(pk=job.pk).update(run_after=job.created_at)
    job.execute()
    assert kinds(events, job) == [
        "scheduled",
        "started",
        "retrying",
        "cleanup",
        "started",
        "failed",
        "cleanup",
    ]
    failed = next(payload for event, _, payload in events if event == "failed")
    assert failed["error"] == "RuntimeError: nope"
    assert failed["status"] == "failed"


def test_cancelling_a_queued_job_sends_cancelled(events):
    job = schedule(tasks.echo)
    cancel(job)
    assert kinds(events, job) == ["scheduled", "cancelled"]


def test_schedule_many_sends_scheduled_per_job(events):
    from async_queue import schedule_many

    jobs = schedule_many([(tasks.echo, [1]), (tasks.echo, [2])])
    assert [pk for event, pk, _ in events] == [job.pk for job in jobs]


def test_a_failing_receiver_is_logged_and_never_breaks_the_job(caplog):
    def broken(sender, job, payload, **kwargs):
        raise RuntimeError("receiver bug")

    for signal in SIGNALS.values():
        signal.connect(broken, dispatch_uid="broken")
    try:
        job = schedule(tasks.echo, [1])
        with caplog.at_level(logging.ERROR, logger="async_queue.events"):
            job.execute()
    finally:
        for signal in SIGNALS.values():
            signal.disconnect(dispatch_uid="broken")
    assert job.status == "succeeded"
    assert "receiver bug" in caplog.text


def test_send_event_without_receivers_is_free(django_assert_num_queries):
    from async_queue import Job

    with django_assert_num_queries(0):
        send_event("progress", Job(pk=1))


def test_every_event_is_a_structured_log_line(caplog):
    job = schedule(tasks.fail, ["bad"], max_attempts=1)
    with caplog.at_level(logging.DEBUG, logger="async_queue.events"):
        job.execute()
    records = [r for r in caplog.records if r.name == "async_queue.events"]
    assert [r.event for r in records] == ["started", "failed", "cleanup"]
    failed = records[1]
    assert failed.levelname == "WARNING"
    assert (failed.job_id, failed.job_name, failed.queue, failed.status, failed.attempt) == (
        job.pk,
        "tests.testapp.tasks.fail",
        "default",
        "failed",
        1,
    )
    assert failed.error == "RuntimeError: bad"
    assert failed.getMessage() == f"job {job.pk} tests.testapp.tasks.fail failed"
