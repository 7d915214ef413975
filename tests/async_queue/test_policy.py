"""The failure policy per job: retry_on, discard_on, backoff, and Retry/Snooze/Fail/Discard."""

from __future__ import annotations

import math

import pytest
from django.db.models.functions import Now
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from async_queue import (
    Discard,
    Exponential,
    Fail,
    Job,
    JobError,
    Retry,
    ScheduleError,
    Snooze,
    Status,
    backoff,
    job,
    schedule,
)
from async_queue.policy import MAX_DELAY, Rules, decide
from async_queue.states import Result
from tests.testapp import policy_jobs
from tests.testapp.models import Counter

pytestmark = pytest.mark.django_db(transaction=True)


def run(job: Job):
    """Run ``job`` now (due or not) in this process, as a worker would; the outcome."""
    Job.objects.filter(pk=job.pk).update(run_after=Now())
    return job.execute()


def delay_of(job: Job) -> float:
    """Seconds between the attempt's claim and the job's next run_after."""
    return (job.run_after - job.started_at).total_seconds()


def counter(name: str = "policy") -> int:
    found = Counter.objects.filter(name=name).first()
    return found.value if found else 0


# -- retry_on and discard_on -------------------------------------------------------------


def test_retry_on_retries_only_the_named_exceptions_and_their_subclasses():
    retried = schedule(policy_jobs.retry_transient, ["transient"])
    assert run(retried).status == Result.RETRYING
    assert retried.status == Status.QUEUED

    failed = schedule(policy_jobs.retry_transient, ["value"])
    assert run(failed).status == Result.FAILED
    assert (failed.status, failed.attempts) == (Status.FAILED, 1)
    assert failed.errors.get().decision == "not retried: not in retry_on"
    assert counter() == 0  # both attempts' writes rolled back


def test_discard_on_fails_at_once_and_says_why():
    job = schedule(policy_jobs.discard_permanent, ["permanent"])
    assert run(job).status == Result.FAILED
    error = job.errors.get()
    assert error.decision == "not retried: tests.testapp.policy_jobs.Permanent is in discard_on"
    assert (job.attempts, job.max_attempts) == (1, 3)

    other = schedule(policy_jobs.discard_permanent, ["runtime"])
    assert run(other).status == Result.RETRYING
    assert other.errors.get().decision.startswith("attempt 1 of 3 failed, retried in ")


def test_no_attempt_left_fails_whatever_the_rules():
    job = schedule(policy_jobs.retry_transient, ["transient"], max_attempts=1)
    assert run(job).status == Result.FAILED
    assert job.errors.get().decision == "attempt 1 of 1 failed: no attempt left"


def test_schedule_overrides_the_declared_rules_and_stores_them_on_the_row():
    job = schedule(
        policy_jobs.retry_transient,
        ["value"],
        retry_on=(ValueError,),
        discard_on=[policy_jobs.Permanent],
    )
    assert job.policy == {
        "retry_on": ["builtins.ValueError"],
        "discard_on": ["tests.testapp.policy_jobs.Permanent"],
    }
    assert run(job).status == Result.RETRYING  # ValueError now retries
    permanent = schedule(policy_jobs.retry_transient, ["permanent"], discard_on=ValueError)
    assert run(permanent).status == Result.FAILED  # a subclass of ValueError: discarded
    # Without overrides the row stores nothing: the declaration decides at run time.
    assert schedule(policy_jobs.plain, ["value"]).policy is None


def test_retry_on_an_empty_tuple_retries_nothing():
    job = schedule(policy_jobs.plain, ["value"], retry_on=())
    assert run(job).status == Result.FAILED


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry_on": "ValueError"}, "retry_on must be an exception class or a tuple of them"),
        ({"retry_on": [int]}, "retry_on must hold exception classes"),
        ({"discard_on": 3}, "discard_on must be an exception class or a tuple of them"),
        ({"backoff": 5}, "backoff must be an async_queue.Exponential(...)"),
        ({"backoff": policy_jobs.undeclared_backoff}, "is not a declared backoff function"),
        ({"backoff": lambda attempt, exc: 1.0}, "is not a declared backoff function"),
    ],
)
def test_bad_policy_options_are_refused_at_schedule_time(options, message):
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        schedule(policy_jobs.plain, ["value"], **options)
    assert not Job.objects.exists()


def test_bad_policy_options_are_refused_at_declaration():
    with pytest.raises(TypeError, match="retry_on must hold exception classes"):
        job(retry_on=(str,))
    with pytest.raises(TypeError, match="backoff must be"):
        job(backoff=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes the function itself"):
        job(backoff="tests.testapp.policy_jobs.linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="give a fraction from 0 to 1"):
        Exponential(jitter=2)
    with pytest.raises(ValueError, match="finite number"):
        Exponential(base=float("nan"))


# -- backoff ----------------------------------------------------------------------------


def test_a_declared_exponential_backoff_sets_the_delays():
    job = schedule(policy_jobs.exponential)
    delays = []
    for _ in range(4):
        assert run(job).status == Result.RETRYING
        delays.append(delay_of(job))
    assert [round(d) for d in delays] == [10, 30, 50, 50]  # x3, capped at 50, no jitter


def test_a_backoff_function_gets_the_attempt_and_the_exception():
    policy_jobs.BACKOFF_CALLS.clear()
    job = schedule(policy_jobs.recorded_backoff)
    run(job)
    run(job)
    assert policy_jobs.BACKOFF_CALLS == [(1, "ValueError"), (2, "ValueError")]
    assert delay_of(job) == pytest.approx(7.0, abs=0.5)


def test_schedule_can_name_a_declared_backoff_function_or_exponential_parameters():
    job = schedule(policy_jobs.plain, ["value"], backoff=policy_jobs.linear)
    assert job.policy == {"backoff": {"function": "tests.testapp.policy_jobs.linear"}}
    run(job)
    assert delay_of(job) == pytest.approx(10.0, abs=0.5)
    run(job)
    assert delay_of(job) == pytest.approx(20.0, abs=0.5)

    exponential = schedule(
        policy_jobs.plain, ["value"], backoff=Exponential(base=3, factor=1, jitter=0)
    )
    assert exponential.policy == {"backoff": {"exponential": {"base": 3, "factor": 1, "jitter": 0}}}
    run(exponential)
    assert delay_of(exponential) == pytest.approx(3.0, abs=0.5)


def test_a_backoff_function_given_to_a_job_declaration_is_declared_for_rows_too():
    job = schedule(policy_jobs.plain, ["value"], backoff=policy_jobs.recorded)
    assert job.policy == {"backoff": {"function": "tests.testapp.policy_jobs.recorded"}}


def test_a_failing_backoff_function_falls_back_to_the_default_and_says_so():
    job = schedule(policy_jobs.broken_backoff)
    assert run(job).status == Result.RETRYING
    decision = job.errors.get().decision
    assert "the backoff function failed (the backoff itself failed)" in decision
    assert 0 < delay_of(job) <= 2.5  # the settings' first delay: at most BACKOFF_BASE


@pytest.mark.parametrize("value", [-1, "soon", None, True])
def test_a_backoff_function_returning_no_usable_delay_falls_back(value):
    job = schedule(policy_jobs.echo_backoff, [value])
    assert run(job).status == Result.RETRYING
    assert "the default backoff was used" in job.errors.get().decision


def test_a_huge_delay_is_capped():
    job = schedule(policy_jobs.echo_backoff, [1e300])
    outcome = run(job)
    assert outcome.retry_in == MAX_DELAY


def test_a_forged_row_naming_an_undeclared_backoff_gets_the_default():
    job = schedule(policy_jobs.plain, ["value"], max_attempts=5)
    for name in ("tests.testapp.policy_jobs.undeclared_backoff", "os.system", "not a name"):
        Job.objects.filter(pk=job.pk).update(policy={"backoff": {"function": name}})
        job.refresh_from_db()
        assert run(job).status == Result.RETRYING
        assert f"{name} is not a declared backoff function" in job.errors.last().decision


def test_an_unreadable_stored_policy_is_ignored():
    job = schedule(policy_jobs.plain, ["value"])
    Job.objects.filter(pk=job.pk).update(
        policy={"retry_on": "x", "backoff": {"exponential": {"base": "x"}}}
    )
    job.refresh_from_db()
    assert run(job).status == Result.RETRYING
    assert Rules.from_data([1, 2]) == Rules()


# -- Retry, Snooze, Fail, Discard -------------------------------------------------------


def test_retry_uses_an_attempt_and_its_delay():
    job = schedule(policy_jobs.steer, ["retry", 30])
    assert run(job).status == Result.RETRYING
    assert (job.attempts, counter("steer")) == (1, 0)
    assert delay_of(job) == pytest.approx(30.0, abs=0.5)
    error = job.errors.get()
    assert error.exception == "async_queue.exceptions.Retry"
    assert error.decision == "Retry raised: attempt 1 of 2 failed, retried in 30.0s"
    assert run(job).status == Result.FAILED  # its last attempt
    assert job.errors.last().decision == "attempt 2 of 2 failed: no attempt left"


def test_retry_without_a_delay_uses_the_backoff():
    job = schedule(policy_jobs.steer, ["retry"], backoff=policy_jobs.linear)
    run(job)
    assert delay_of(job) == pytest.approx(10.0, abs=0.5)


def test_retry_is_not_subject_to_retry_on_or_discard_on():
    job = schedule(policy_jobs.retry_despite_rules)
    assert run(job).status == Result.RETRYING


def test_snooze_runs_again_later_without_using_an_attempt_or_recording_an_error():
    job = schedule(policy_jobs.steer, ["snooze", 20])
    for snoozes in (1, 2, 3):
        assert run(job).status == Result.SNOOZED
        assert (job.status, job.attempts, job.snoozes) == (Status.QUEUED, 0, snoozes)
    assert delay_of(job) == pytest.approx(20.0, abs=0.5)
    assert not JobError.objects.exists()
    assert counter("steer") == 0  # each attempt's write rolled back


@override_settings(ASYNC_QUEUE={"MAX_SNOOZES": 2})
def test_a_job_that_keeps_snoozing_fails_after_max_snoozes():
    job = schedule(policy_jobs.steer, ["snooze", 1])
    assert [run(job).status for _ in range(3)] == [Result.SNOOZED, Result.SNOOZED, Result.FAILED]
    assert job.errors.get().decision == "snoozed 2 times, the most MAX_SNOOZES allows"


@pytest.mark.parametrize(
    ("action", "decision"),
    [("fail", "failed by the job: the input is wrong"), ("discard", "discarded by the job")],
)
def test_fail_and_discard_fail_now_with_attempts_left(action, decision):
    job = schedule(policy_jobs.steer, [action], max_attempts=5)
    assert run(job).status == Result.FAILED
    assert (job.status, job.attempts) == (Status.FAILED, 1)
    assert job.errors.get().decision == decision
    assert counter("steer") == 0


def test_steering_exceptions_validate_their_delays():
    with pytest.raises(ValueError, match="Retry"):
        Retry(in_=-1)
    with pytest.raises(ValueError, match="Snooze"):
        Snooze(float("inf"))
    assert isinstance(Discard(), Fail)


# -- the infrastructure's losses and the page -------------------------------------------


def test_a_lost_attempt_follows_the_infrastructure_rule_not_the_jobs_rules():
    rules = Rules.given(discard_on=ConnectionError, retry_on=ValueError)
    lost = decide(ConnectionError("gone"), rules, attempt=1, max_attempts=1, snoozes=0, lost=True)
    assert (lost.status, lost.retry_in) == (Result.RETRYING, 0.0)
    aborted = decide(ValueError(), rules, attempt=9, max_attempts=1, snoozes=0, aborted=True)
    assert aborted.status == Result.ABORTED


def test_the_job_page_shows_the_policy_and_each_attempts_decision(superuser_client):
    job = schedule(policy_jobs.discard_permanent, ["permanent"], backoff=policy_jobs.linear)
    run(job)
    page = superuser_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Failure policy" in page
    assert "tests.testapp.policy_jobs.Permanent" in page  # discard on
    assert "tests.testapp.policy_jobs.linear" in page  # backoff, from schedule()
    assert "schedule() (over the job&#x27;s declaration)" in page
    assert "→ not retried: tests.testapp.policy_jobs.Permanent is in discard_on" in page


# -- a property of every backoff function ----------------------------------------------

delays = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.none(),
    st.text(max_size=3),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(returned=delays, attempt=st.integers(min_value=1, max_value=10**6))
def test_any_backoff_function_gives_a_finite_delay_within_bounds(returned, attempt):
    """Whatever a backoff function returns or raises, the delay is a finite number in
    [0, MAX_DELAY], and a usable number is kept as it is (capped)."""

    def function(attempt: int, exc: BaseException) -> float:
        return returned  # type: ignore[return-value]

    decision = decide(
        ValueError(), Rules(backoff=function), attempt=attempt, max_attempts=10**7, snoozes=0
    )
    assert decision.status == Result.RETRYING
    assert decision.retry_in is not None
    assert math.isfinite(decision.retry_in)
    assert 0 <= decision.retry_in <= MAX_DELAY
    usable = isinstance(returned, int | float) and not isinstance(returned, bool)
    if usable and not math.isnan(returned) and returned >= 0:
        assert decision.retry_in == min(float(returned), MAX_DELAY)


@backoff
def declared_here(attempt: int, exc: BaseException) -> float:
    return 1.0


def test_backoff_marks_a_function_declared():
    assert declared_here.async_queue_backoff is True  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="decorates a function"):
        backoff(3)  # type: ignore[arg-type]
