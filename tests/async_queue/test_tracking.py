import json
import logging
import threading
import time
from datetime import datetime

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from async_queue import Job, JobLock, schedule
from async_queue.contrib.tracking import Tracker, get_tracker
from async_queue.contrib.tracking import receivers as tracking
from async_queue.contrib.tracking.checks import check_tracker
from async_queue.contrib.tracking.tracker import SIDE_SUFFIX
from async_queue.signals import send_event
from tests.trackerapp import tasks
from tests.trackerapp.models import TaskRecord, TextRecord
from tests.trackerapp.trackers import CountingTracker

# Transactional: the tracker's side connection (PostgreSQL) and other test
# connections must see what the test wrote.
pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = {
    "status": "state",
    "message": "message",
    "progress": "percent",
    "result": "result",
    "error": "error_text",
    "created": "created_at",
    "updated": "updated_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "user": "owner",
    "objects": "affected",
    "payload": "extra",
}
TEXT_FIELDS = {
    "status": "status",
    "progress": "progress",
    "result": "result",
    "user": "user",
    "objects": "locks",
    "payload": "payload",
}


class Rollback(Exception):
    pass


@pytest.fixture(autouse=True)
def fresh_tracker():
    tracking._cache = None
    yield
    tracking._cache = None


@pytest.fixture
def track(settings):
    """Configure the tracker: ``track(**config)`` (FIELDS etc.) over the TaskRecord default."""

    def configure(**config):
        base = {"MODEL": "trackerapp.TaskRecord", "FIELDS": FIELDS}
        settings.ASYNC_QUEUE = {**settings.ASYNC_QUEUE, "TRACKER": {**base, **config}}

    configure()
    return configure


def make_job(**fields):
    return Job.objects.create(name="tests.trackerapp.tasks.add", args=[1, 2], **fields)


def record(job):
    return TaskRecord.objects.get(job_id=job.pk)


def progress(current, total, message=""):
    return {"current": current, "total": total, "message": message}


def read_elsewhere(job):
    """The record's percent as another connection (another thread) sees it."""
    seen = {}

    def read():
        try:
            seen["percent"] = TaskRecord.objects.get(job_id=job.pk).percent
        finally:
            connections.close_all()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(10)
    return seen["percent"]


# -- field mapping ---------------------------------------------------------------------


def test_scheduled_creates_the_record_with_the_fields_it_provides(track, django_user_model):
    user = django_user_model.objects.create_user("ann")
    job = make_job(user=user)
    send_event("scheduled", job, locks=["trackerapp.taskrecord:1", "price-feed"])
    row = record(job)
    assert row.state == "queued"
    assert row.created_at == job.created_at
    assert row.updated_at is not None
    assert row.owner == user
    assert row.affected == ["trackerapp.taskrecord:1", "price-feed"]
    assert row.extra["event"] == "scheduled"
    assert row.extra["locks"] == ["trackerapp.taskrecord:1", "price-feed"]
    assert datetime.fromisoformat(row.extra["timestamp"])  # a JSON-able payload, ISO dates
    assert (row.percent, row.result, row.error_text, row.message) == (None, None, "", "")
    assert (row.completed_at, row.failed_at) == (None, None)


def test_a_successful_run_is_mirrored_event_by_event(track):
    job = make_job()
    send_event("scheduled", job, locks=[])
    send_event("started", job)
    row = record(job)
    assert row.state == "running"
    assert row.updated_at > row.created_at

    send_event("progress", job, progress=progress(3, 4, "three of four"))
    row = record(job)
    assert (row.percent, row.message) == (75, "three of four")

    send_event("succeeded", job, result={"total": 7})
    row = record(job)
    assert row.state == "succeeded"
    assert row.result == {"total": 7}
    assert row.percent == 100  # the total was known
    assert row.completed_at is not None
    assert row.failed_at is None

    send_event("cleanup", job)
    assert record(job).result == {"total": 7}


def test_retrying_and_failing_are_mirrored(track):
    job = make_job()
    send_event("scheduled", job)
    send_event("started", job)
    send_event("retrying", job, error="ValueError: boom")
    row = record(job)
    assert (row.state, row.error_text, row.message) == (
        "retrying",
        "ValueError: boom",
        "ValueError: boom",
    )
    assert (row.completed_at, row.failed_at) == (None, None)
    send_event("cleanup", job)

    send_event("started", job)
    assert record(job).error_text == "ValueError: boom"  # a later event does not blank it
    long_error = "RuntimeError: " + "x" * 100
    send_event("failed", job, error=long_error)
    row = record(job)
    assert row.state == "failed"
    assert row.error_text == long_error
    assert row.failed_at is not None
    assert row.completed_at == row.failed_at


def test_text_is_cut_to_the_fields_max_length(track):
    job = make_job()
    send_event("retrying", job, error="E" * 100)
    row = record(job)
    assert len(row.message) == 40
    assert row.message.endswith("…")


def test_cancelled_is_mirrored(track):
    job = make_job()
    send_event("scheduled", job)
    send_event("cancelled", job)
    row = record(job)
    assert row.state == "cancelled"
    assert row.completed_at is not None


def test_text_fields_and_a_job_foreign_key_lookup(track, django_user_model):
    track(MODEL="trackerapp.TextRecord", LOOKUP="job", FIELDS=TEXT_FIELDS)
    user = django_user_model.objects.create_user("ann")
    job = make_job(user=user)
    send_event("scheduled", job, locks=["a:1", "b:2"])
    send_event("progress", job, progress=progress(3, 4, "three"))
    send_event("succeeded", job, result={"n": 1, "name": "Zoë"})
    row = TextRecord.objects.get(job=job)
    assert row.status == "succeeded"
    assert row.user == "ann"
    assert row.locks == "a:1, b:2"
    assert json.loads(row.payload)["event"] == "scheduled"
    assert json.loads(row.result) == {"n": 1, "name": "Zoë"}
    assert row.progress == "4/4"  # succeeded completed it
    send_event("progress", job, progress=progress(5, None, "counting"))
    assert TextRecord.objects.get(job=job).progress == "5 counting"


def test_number_fields_get_a_count_and_a_percentage(track):
    track(
        MODEL="trackerapp.TextRecord",
        LOOKUP="job_id",
        FIELDS={"objects": "lock_count", "progress": "percent"},
    )
    job = make_job()
    send_event("scheduled", job, locks=["a:1", "b:2", "c:3"])
    send_event("progress", job, progress=progress(1, 3))
    row = TextRecord.objects.get(job=job)
    assert (row.lock_count, row.percent) == (3, 33.33)


# -- partial updates and None-safety -----------------------------------------------------


def test_only_the_fields_an_event_provides_are_written(track):
    job = make_job()
    send_event("scheduled", job)
    TaskRecord.objects.filter(job_id=job.pk).update(
        message="edited by hand", percent=12, note="mine"
    )
    with CaptureQueriesContext(connection) as queries:
        send_event("started", job)
    (update,) = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    set_clause = update.split(" WHERE ")[0]
    assert "state" in set_clause
    assert "updated_at" in set_clause
    assert "percent" not in set_clause
    assert "message" not in set_clause
    row = record(job)
    assert (row.state, row.message, row.percent, row.note) == (
        "running",
        "edited by hand",
        12,
        "mine",
    )

    TaskRecord.objects.filter(job_id=job.pk).update(state="paused by hand")
    send_event("progress", job, progress=progress(1, 2, "half"))
    row = record(job)
    assert (row.state, row.percent, row.message, row.note) == (
        "paused by hand",
        50,
        "half",
        "mine",
    )


def test_a_later_event_never_overwrites_a_value_with_none(track):
    job = make_job()
    send_event("started", job)
    send_event("progress", job, progress=progress(1, 2))
    send_event("progress", job, progress=progress(2, None))  # total unknown: no percentage
    assert record(job).percent == 50
    send_event("succeeded", job, result=[1, 2])
    send_event("cleanup", job, result=None, error=None)
    row = record(job)
    assert row.result == [1, 2]
    assert row.state == "succeeded"


def test_the_record_is_created_by_the_first_event_it_sees(track, django_user_model):
    user = django_user_model.objects.create_user("bob")
    job = make_job(user=user, has_locks=True)
    JobLock.objects.create(job=job, key="trackerapp.taskrecord:9")
    JobLock.objects.create(job=job, key="feed")
    send_event("started", job)
    row = record(job)
    assert row.state == "running"
    assert row.created_at == job.created_at
    assert row.owner == user
    assert row.affected == ["feed", "trackerapp.taskrecord:9"]
    assert row.extra is None  # the scheduled payload was never seen

    other = make_job()
    send_event("progress", other, progress=progress(1, 4))
    assert record(other).percent == 25
    assert record(other).created_at == other.created_at


def test_status_map(track):
    track(STATUS_MAP={"queued": "waiting", "succeeded": "done"})
    job = make_job()
    send_event("scheduled", job)
    assert record(job).state == "waiting"
    send_event("started", job)
    assert record(job).state == "running"
    send_event("succeeded", job, result=None)
    assert record(job).state == "done"


# -- hooks and CLASS ---------------------------------------------------------------------


def test_a_subclass_named_in_class_overrides_every_format_hook(track, django_user_model):
    track(
        CLASS="tests.trackerapp.trackers.CustomTracker",
        FIELDS={**FIELDS, "user": "note"},
    )
    user = django_user_model.objects.create_user("ann")
    job = make_job(user=user)
    send_event("scheduled", job, locks=["a:1", "b:2"])
    send_event("started", job)
    send_event("progress", job, progress=progress(7, 10))
    row = record(job)
    assert row.state == "RUNNING"
    assert row.note == f"user #{user.pk}"
    assert row.affected == {"count": 2, "first": "a:1"}
    assert row.extra == {"event": "scheduled", "attempt": 0}
    assert row.percent == 7


def test_the_tracker_is_cached_per_configuration(track, settings):
    first = get_tracker()
    assert get_tracker() is first
    assert type(first) is Tracker
    track(STATUS_MAP={"queued": "waiting"})
    second = get_tracker()
    assert second is not first
    assert get_tracker() is second


def test_receivers_connect_once(track):
    track(CLASS="tests.trackerapp.trackers.CountingTracker")
    tracking.connect()
    tracking.connect()
    CountingTracker.handled.clear()
    job = make_job()
    for event in ("scheduled", "started", "succeeded", "cleanup"):
        send_event(event, job)
    assert CountingTracker.handled == ["scheduled", "started", "succeeded", "cleanup"]


def test_nothing_happens_without_a_tracker_setting():
    job = make_job()
    send_event("scheduled", job)
    assert not TaskRecord.objects.exists()


# -- failures ------------------------------------------------------------------------------


def test_a_failing_hook_is_logged_and_never_raised(track, caplog):
    track(CLASS="tests.trackerapp.trackers.ExplodingTracker")
    job = make_job()
    with caplog.at_level(logging.ERROR):
        send_event("scheduled", job)
    (message,) = [r for r in caplog.records if r.name == "async_queue.tracking"]
    assert f"scheduled event of job {job.pk}" in message.getMessage()
    assert "the status hook exploded" in str(message.exc_info[1])
    assert not [r for r in caplog.records if r.name == "async_queue.events"]
    assert not TaskRecord.objects.exists()


def test_a_misconfigured_tracker_is_logged_and_never_raised(track, caplog):
    track(CLASS="tests.trackerapp.trackers.NotATracker")
    job = make_job()
    with caplog.at_level(logging.ERROR):
        send_event("scheduled", job)
    assert "not a subclass" in caplog.text
    assert not TaskRecord.objects.exists()


def test_a_failed_write_does_not_break_the_surrounding_transaction(track, caplog):
    track(CLASS="tests.trackerapp.trackers.NegativeProgressTracker")
    job = make_job()
    send_event("scheduled", job)
    with caplog.at_level(logging.ERROR), transaction.atomic():
        send_event("succeeded", job, progress=progress(2, 2))  # -5: the CHECK refuses it
        # On PostgreSQL an aborted transaction would refuse this query.
        TaskRecord.objects.filter(job_id=job.pk).update(note="still usable")
    assert "tracker failed on the succeeded event" in caplog.text
    row = record(job)
    assert (row.note, row.state, row.percent) == ("still usable", "queued", None)


# -- the job's transaction -----------------------------------------------------------------


def test_progress_inside_the_jobs_transaction_is_written_outside_it(track):
    job = make_job()
    send_event("scheduled", job)
    send_event("started", job)
    with pytest.raises(Rollback), transaction.atomic():  # the job's transaction
        send_event("progress", job, progress=progress(1, 4, "one"))
        if connection.vendor == "postgresql":
            assert read_elsewhere(job) == 25  # visible at once, from a second connection
        else:
            assert record(job).percent is None  # buffered: SQLite has one writer
        raise Rollback
    send_event("retrying", job, error="ValueError: boom")
    send_event("cleanup", job)
    row = record(job)
    assert (row.percent, row.state) == (25, "retrying")  # not rolled back with the job
    assert row.message == "ValueError: boom"  # the outcome's own values win


def test_buffered_progress_is_applied_at_cleanup(track):
    job = make_job()
    send_event("scheduled", job)
    send_event("started", job)
    with transaction.atomic():
        send_event("progress", job, progress=progress(1, 3, "one"))
        send_event("progress", job, progress=progress(2, 3, "two"))
    send_event("cleanup", job)  # no outcome event (e.g. the job was deferred)
    row = record(job)
    assert (row.percent, row.message, row.state) == (66, "two", "running")
    assert (job._state.db, job.pk) not in get_tracker()._jobs


def test_succeeded_completes_buffered_progress(track):
    job = make_job()
    send_event("scheduled", job)
    send_event("started", job)
    with transaction.atomic():
        send_event("progress", job, progress=progress(2, 8, "two"))
    send_event("succeeded", job, result=8)
    row = record(job)
    assert (row.percent, row.message, row.result) == (100, "two", 8)
    send_event("cleanup", job)
    assert record(job).percent == 100


def test_scheduled_in_a_callers_transaction_rolls_back_with_it(track):
    with pytest.raises(Rollback), transaction.atomic():
        job = make_job()
        send_event("scheduled", job)
        raise Rollback
    assert not TaskRecord.objects.exists()


@pytest.mark.postgres
def test_the_side_connection_is_closed_when_the_job_ends(track):
    job = make_job()
    send_event("started", job)
    with transaction.atomic():
        send_event("progress", job, progress=progress(1, 2))
        side = connections["default" + SIDE_SUFFIX]
        assert side.connection is not None
        assert side.connection is not connection.connection
    send_event("succeeded", job)
    assert side.connection is None
    assert record(job).percent == 100


@pytest.mark.postgres
def test_a_record_the_job_locked_times_out_instead_of_hanging(track, caplog):
    track(CLASS="tests.trackerapp.trackers.QuickTimeoutTracker")
    job = make_job()
    send_event("scheduled", job)
    send_event("started", job)
    with caplog.at_level(logging.ERROR), transaction.atomic():
        TaskRecord.objects.select_for_update().get(job_id=job.pk)  # the body locks the record
        began = time.monotonic()
        send_event("progress", job, progress=progress(1, 4, "one"))
        assert time.monotonic() - began < 5
        send_event("progress", job, progress=progress(2, 4, "two"))  # buffered, no new wait
        TaskRecord.objects.filter(job_id=job.pk).update(note="the job went on")
    (failure,) = [r for r in caplog.records if r.name == "async_queue.tracking"]
    assert "tracker failed on the progress event" in failure.getMessage()
    row = record(job)
    assert (row.note, row.percent) == ("the job went on", None)
    send_event("cleanup", job)  # the buffered values are written once the job's transaction ended
    row = record(job)
    assert (row.percent, row.message) == (50, "two")


# -- system checks ---------------------------------------------------------------------------


def check_ids(tracker):
    with override_settings(ASYNC_QUEUE={"TRACKER": tracker}):
        messages = check_tracker()
    assert all(message.hint for message in messages)
    return sorted(message.id for message in messages)


VALID = {"MODEL": "trackerapp.TaskRecord", "FIELDS": FIELDS}


def test_valid_tracker_settings_pass():
    assert check_ids(None) == []
    assert check_ids(VALID) == []
    assert check_ids({**VALID, "CLASS": "tests.trackerapp.trackers.CustomTracker"}) == []
    assert check_ids({"MODEL": "trackerapp.TextRecord", "LOOKUP": "job"}) == []
    assert check_ids({**VALID, "STATUS_MAP": {"succeeded": "done"}}) == []


@pytest.mark.parametrize(
    ("tracker", "expected"),
    [
        ("trackerapp.TaskRecord", ["async_queue.E010"]),
        ({"FIELDS": {}}, ["async_queue.E011"]),
        ({"MODEL": "trackerapp.Nope"}, ["async_queue.E011"]),
        ({"MODEL": "TaskRecord"}, ["async_queue.E011"]),
        ({**VALID, "FIELDS": {"status": "colour"}}, ["async_queue.E012"]),
        ({**VALID, "FIELDS": {"colour": "state"}}, ["async_queue.E013"]),
        ({**VALID, "FIELDS": ["state"]}, ["async_queue.E013"]),
        ({**VALID, "LOOKUP": "job"}, ["async_queue.E014"]),
        ({**VALID, "CLASS": "tests.trackerapp.trackers.Missing"}, ["async_queue.E015"]),
        ({**VALID, "CLASS": "tests.trackerapp.trackers.NotATracker"}, ["async_queue.E015"]),
        ({**VALID, "FIELD": {}}, ["async_queue.E016"]),
        ({**VALID, "STATUS_MAP": {"done": "x"}}, ["async_queue.E017"]),
        ({**VALID, "STATUS_MAP": ["done"]}, ["async_queue.E017"]),
        ({**VALID, "LOOKUP": "percent"}, ["async_queue.W010"]),
    ],
)
def test_bad_tracker_settings_are_reported_with_stable_ids(tracker, expected):
    assert check_ids(tracker) == expected


def test_the_field_error_names_the_fields_to_use():
    with override_settings(ASYNC_QUEUE={"TRACKER": {**VALID, "FIELDS": {"status": "colour"}}}):
        (error,) = check_tracker()
    assert "'colour' is not a field of trackerapp.TaskRecord" in error.msg
    assert "state" in error.hint


# -- end to end, through a real worker ------------------------------------------------------


def test_end_to_end_a_job_run_by_the_worker(track, django_user_model):
    user = django_user_model.objects.create_user("ann")
    job = schedule(tasks.add, [2, 3], user=user, locks=["feed"])
    assert job.pk is not None  # outside a transaction the row is written at once
    job.execute()
    row = record(job)
    assert row.state == "succeeded"
    assert row.result == 5
    assert row.owner == user
    assert row.affected == ["feed"]
    assert row.created_at == job.created_at
    assert row.completed_at is not None


def test_end_to_end_a_job_that_fails(track):
    job = schedule(tasks.fail, ["nope"], max_attempts=1)
    job.execute()
    row = record(job)
    assert row.state == "failed"
    assert "nope" in row.error_text
    assert row.failed_at is not None


def test_end_to_end_progress_reported_by_the_job(track):
    job = schedule(tasks.count_to, [4])
    job.execute()
    row = record(job)
    assert (row.state, row.result, row.percent, row.message) == ("succeeded", 4, 100, "step 4")
