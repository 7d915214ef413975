import re
import sys
import traceback

import pytest
from django.db import connection
from django.db.models.functions import Now

from async_queue import InvalidJobState, Job, JobError, Status, schedule
from async_queue.attempts import format_traceback
from async_queue.retries import retry_ceiling
from async_queue.sql import dialect
from async_queue.worker import Worker
from tests.faults.stored import forge, nested_list, nested_object
from tests.testapp import tasks
from tests.testapp.models import Counter, Record

pytestmark = pytest.mark.django_db(transaction=True)


def make_due(job):
    Job.objects.filter(pk=job.pk).update(run_after=Now())


def test_success_commits_the_body_and_the_job_together():
    job = schedule(tasks.increment, kwargs={"name": "a", "by": 3})
    outcome = job.execute()
    assert outcome.status == Status.SUCCEEDED
    assert Counter.objects.get(name="a").value == 3
    job.refresh_from_db()
    assert (job.status, job.result, job.attempts) == (Status.SUCCEEDED, 3, 1)
    assert job.started_at <= job.finished_at
    assert job.worker  # the claiming worker is recorded
    assert not job.errors.exists()


def test_a_failing_body_rolls_back_and_is_retried_with_backoff():
    job = schedule(tasks.increment_then_fail, kwargs={"name": "a"})
    outcome = job.execute()
    assert outcome.status == "retrying"
    assert not Counter.objects.exists()  # the body's write rolled back
    assert job.status == Status.QUEUED
    assert job.attempts == 1
    assert job.last_error == "ValueError: failed after incrementing a"
    error = job.errors.get()
    # Counted from the failure's record (the same transaction), not from the claim: a
    # loaded machine may take a while between the two.
    delay = (job.run_after - error.created_at).total_seconds()
    assert retry_ceiling(1) / 2 - 0.05 <= delay <= retry_ceiling(1) + 0.01
    assert outcome.retry_in == pytest.approx(delay, abs=0.05)
    assert (error.attempt, error.exception, error.message) == (
        1,
        "ValueError",
        "failed after incrementing a",
    )
    assert "Traceback (most recent call last)" in error.traceback
    assert "increment_then_fail" in error.traceback
    assert error.worker == job.worker


def test_a_job_that_keeps_failing_ends_failed_after_max_attempts():
    job = schedule(tasks.fail, ["nope"], max_attempts=3)
    statuses = []
    for _ in range(3):
        make_due(job)
        statuses.append(job.execute().status)
    assert statuses == ["retrying", "retrying", "failed"]
    assert job.status == Status.FAILED
    assert job.finished_at is not None
    assert list(job.errors.values_list("attempt", flat=True)) == [1, 2, 3]
    with pytest.raises(InvalidJobState, match="only a queued job can run"):
        job.execute()


def test_execute_runs_a_queued_job_before_its_run_after():
    import datetime as dt

    job = schedule(tasks.increment, run_after=dt.timedelta(hours=1))
    assert job.execute().status == Status.SUCCEEDED


def test_execute_refuses_a_job_whose_row_is_not_written_yet():
    from django.db import transaction

    other = schedule(tasks.echo)
    with transaction.atomic():
        pending = schedule(tasks.echo)
        with pytest.raises(InvalidJobState, match="no row yet"):
            pending.execute()
    assert Job.objects.get(pk=other.pk).status == Status.QUEUED


def test_sys_exit_in_a_job_is_a_failed_attempt():
    job = schedule(tasks.call_exit, [4], max_attempts=1)
    assert job.execute().status == Status.FAILED
    assert job.errors.get().exception == "SystemExit"


def test_a_result_that_is_not_json_fails_the_attempt():
    job = schedule(tasks.returns_unstorable, max_attempts=1)
    job.execute()
    assert job.status == Status.FAILED
    assert "cannot be stored as JSON" in job.last_error


def test_forged_row_naming_a_disallowed_module_fails_without_importing_it():
    assert "this" not in sys.modules
    job = Job.objects.create(name="this.s", max_attempts=5)
    outcome = job.execute()
    assert outcome.status == Status.FAILED  # final at once: retrying cannot help
    assert "this" not in sys.modules
    assert "outside the installed apps" in job.last_error
    assert job.attempts == 1


def test_forged_row_naming_something_not_callable_fails_at_once():
    job = Job.objects.create(name="tests.testapp.tasks.NOT_CALLABLE")
    assert job.execute().status == Status.FAILED
    assert "not a declared job" in job.last_error


def test_forged_row_naming_an_undeclared_function_of_an_installed_app_calls_nothing():
    job = Job.objects.create(name="tests.testapp.tasks.undeclared", max_attempts=5)
    outcome = job.execute()
    assert outcome.status == Status.FAILED  # final at once: retrying cannot help
    assert "not a declared job; decorate it with @async_queue.job" in job.last_error
    assert job.result is None
    assert job.attempts == 1


def test_a_name_that_does_not_import_is_retried():
    job = Job.objects.create(name="tests.testapp.gone.fn")
    assert job.execute().status == "retrying"
    assert "No module named 'tests.testapp.gone'" in job.last_error


def test_completion_is_fenced_to_the_claim():
    job = schedule(tasks.increment)
    claimed = dialect("default").claim("worker-a", job_id=job.pk)
    # Another process took the job over (a false rescue): the first runner must not commit.
    Job.objects.filter(pk=job.pk).update(worker="worker-b")
    with Worker(worker_id="worker-a") as worker:
        outcome = worker.run(claimed)
    assert outcome.status == "fenced"
    assert not Counter.objects.exists()
    job.refresh_from_db()
    assert (job.status, job.worker) == (Status.RUNNING, "worker-b")
    assert not JobError.objects.exists()


def test_a_worker_recovers_its_own_job_whose_failure_it_could_not_record():
    job = schedule(tasks.increment)
    with Worker(worker_id="worker-a") as worker:
        worker.liveness.ensure()  # alive: other workers would never take this job
        # Claimed, then the connection was lost and the failure could not be written.
        dialect("default").claim("worker-a", job_id=job.pk)
        assert worker.recover() == 1
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.QUEUED, 1)
    (error,) = JobError.objects.filter(job=job)
    assert error.message == ("Worker worker-a lost its database connection while running this job.")


def test_claim_counts_the_attempt_in_a_committed_statement():
    job = schedule(tasks.increment)
    claimed = dialect("default").claim("w")
    assert claimed.pk == job.pk
    assert (claimed.status, claimed.attempts, claimed.worker) == (Status.RUNNING, 1, "w")
    assert claimed.started_at is not None
    assert Job.objects.get(pk=job.pk).attempts == 1
    assert dialect("default").claim("w") is None


def test_claim_order_is_priority_then_age_and_skips_future_jobs():
    import datetime as dt

    low = schedule(tasks.record, ["low"], priority=-1)
    first = schedule(tasks.record, ["first"])
    second = schedule(tasks.record, ["second"])
    high = schedule(tasks.record, ["high"], priority=10)
    schedule(tasks.record, ["later"], priority=100, run_after=dt.timedelta(hours=1))
    with Worker() as worker:
        assert worker.drain() == 4
    assert list(Record.objects.order_by("id").values_list("label", flat=True)) == [
        "high",
        "first",
        "second",
        "low",
    ]
    assert {high.pk, first.pk, second.pk, low.pk} == set(
        Job.objects.succeeded().values_list("pk", flat=True)
    )


def test_claim_query_is_one_statement(django_assert_num_queries):
    schedule(tasks.increment)
    with django_assert_num_queries(1):
        assert dialect("default").claim("w") is not None


def test_success_path_costs_the_body_plus_one_update(django_assert_num_queries):
    job = schedule(tasks.echo, [1])
    claimed = dialect("default").claim("w")
    # BEGIN, the fenced UPDATE, COMMIT: nothing else on the success path.
    with django_assert_num_queries(3):
        Worker(worker_id="w").run(claimed)  # run() alone takes no liveness lock
    assert Job.objects.get(pk=job.pk).status == Status.SUCCEEDED


def test_queue_and_prefix_filters():
    schedule(tasks.record, ["mail"], queue="mail")
    schedule(tasks.record, ["default"])
    schedule(tasks.echo, ["echo"], queue="mail")
    with Worker(queues=["mail"], prefix="tests.testapp.tasks.rec") as worker:
        assert worker.drain() == 1
    assert list(Record.objects.values_list("label", flat=True)) == ["mail"]
    with Worker(queues=["mail"]) as worker:
        assert worker.drain() == 1
    with Worker() as worker:
        assert worker.drain(max_jobs=5) == 1


def raised(text: str) -> BaseException:
    with pytest.raises(ValueError, match=re.escape(text[:20])) as caught:
        raise ValueError(text)
    return caught.value


@pytest.mark.parametrize("text", ["x" * 200_000, "é" * 200_000, "€" * 50_001])
def test_stored_tracebacks_fit_the_byte_limit_in_whole_characters(settings, text):
    settings.ASYNC_QUEUE = {**settings.ASYNC_QUEUE, "TRACEBACK_MAX_BYTES": 4096}
    exc = raised(text)
    whole = "".join(traceback.format_exception(exc))
    stored = format_traceback(exc)
    assert len(stored.encode()) <= 4096  # bytes of UTF-8, not characters
    head, note, tail = re.split(r"(\n\.\.\. \[\d+ bytes cut\] \.\.\.\n)", stored)
    assert whole.startswith(head)
    assert whole.endswith(tail)
    assert head.startswith("Traceback (most recent call last):")
    cut = int(re.search(r"\d+", note).group())
    assert len(head.encode()) + cut + len(tail.encode()) == len(whole.encode())


def test_short_tracebacks_are_stored_whole():
    exc = raised("short")
    assert format_traceback(exc) == "".join(traceback.format_exception(exc))


# -- rows schedule() would refuse --------------------------------------------------------


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ({"args": nested_list(12_000)}, "args cannot be read: [unreadable: JSON nested too deeply"),
        ({"kwargs": nested_object(12_000)}, "kwargs cannot be read: [unreadable"),
        ({"args": '"abc"'}, "args must be a JSON list, not str"),
        ({"kwargs": "[1, 2]"}, "kwargs must be a JSON object, not list"),
    ],
)
def test_a_row_whose_arguments_cannot_be_passed_fails_at_once_calling_nothing(columns, problem):
    job = Job.objects.create(name="tests.testapp.tasks.increment", max_attempts=5)
    forge(job.pk, **columns)
    outcome = job.execute()
    assert outcome.status == Status.FAILED  # final at once: retrying cannot help
    assert job.attempts == 1
    assert problem in job.last_error
    error = job.errors.get()
    assert error.exception == "async_queue.exceptions.UnreadableArguments"
    assert "nothing was called: schedule the call again" in error.message
    assert not Counter.objects.exists()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="jsonb only stores valid JSON")
def test_arguments_that_are_not_json_fail_at_once():
    job = Job.objects.create(name="tests.testapp.tasks.increment", max_attempts=5)
    forge(job.pk, args="not json [")
    assert job.execute().status == Status.FAILED
    assert "args cannot be read: [unreadable: not valid JSON (Expecting value" in job.last_error
    assert not Counter.objects.exists()


def test_a_result_over_max_result_bytes_fails_the_attempt(settings):
    settings.ASYNC_QUEUE = {"MAX_RESULT_BYTES": 1000}
    fits = schedule("tests.faultapp.jobs_stored.returns_json", [1000])
    assert fits.execute().status == Status.SUCCEEDED
    assert len(fits.result) == 998
    too_big = schedule("tests.faultapp.jobs_stored.returns_json", [1001], max_attempts=1)
    assert too_big.execute().status == Status.FAILED
    assert too_big.result is None
    assert too_big.errors.get().exception == "async_queue.exceptions.ResultTooLarge"
    assert "returned 1,001 bytes of JSON, over ASYNC_QUEUE['MAX_RESULT_BYTES'] (1,000)" in (
        too_big.last_error
    )


def test_a_result_the_database_cannot_store_fails_the_attempt_naming_it():
    job = schedule(tasks.returns_text, ["aNULb"], max_attempts=1, on_commit=False)
    assert job.execute().status == Status.FAILED
    assert "The job's result['text'] contains a NUL character" in job.last_error
    job = schedule(tasks.returns_text, ["fine"], on_commit=False)
    assert job.execute().status == Status.SUCCEEDED
