import datetime as dt
import decimal
import uuid

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from async_queue import Job, ScheduleError, Status, deschedule, schedule
from async_queue.exceptions import JobNotAllowed
from tests.testapp import tasks
from tests.testapp.models import Counter

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    pass


def test_commit_writes_exactly_one_job_and_sets_its_pk():
    with transaction.atomic():
        job = schedule(tasks.increment, kwargs={"name": "a"})
        assert job.pk is None
        assert not Job.objects.exists()
    assert job.pk is not None
    stored = Job.objects.get()
    assert (stored.pk, stored.name, stored.kwargs) == (
        job.pk,
        "tests.testapp.tasks.increment",
        {"name": "a"},
    )
    assert stored.status == Status.QUEUED
    assert stored.attempts == 0
    assert stored.max_attempts == 5


def test_rollback_leaves_no_job():
    with pytest.raises(Rollback), transaction.atomic():
        schedule(tasks.increment)
        raise Rollback
    assert not Job.objects.exists()


def test_rolled_back_savepoint_leaves_no_job_but_the_outer_one_commits():
    with transaction.atomic():
        schedule(tasks.record, ["outer"])
        with pytest.raises(Rollback), transaction.atomic():
            schedule(tasks.record, ["inner"])
            raise Rollback
    assert list(Job.objects.values_list("args", flat=True)) == [["outer"]]


def test_autocommit_writes_at_once():
    job = schedule("tests.testapp.tasks.increment")
    assert job.pk is not None
    assert Job.objects.get().pk == job.pk


def test_on_commit_false_writes_inside_the_callers_transaction():
    with pytest.raises(Rollback), transaction.atomic():
        job = schedule(tasks.increment, on_commit=False)
        assert job.pk is not None
        assert Job.objects.filter(pk=job.pk).exists()
        raise Rollback
    assert not Job.objects.exists()


def test_another_connection_cannot_see_a_job_before_commit(manage):
    import json

    with transaction.atomic():
        schedule(tasks.increment, on_commit=False)
        seen = json.loads(manage("queue_health").stdout)
        assert seen["counts"]["queued"] == 0
    assert json.loads(manage("queue_health").stdout)["counts"]["queued"] == 1


def test_django_json_types_are_accepted_and_stored_as_json():
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    key = uuid.uuid4()
    job = schedule(
        tasks.echo,
        (dt.date(2026, 1, 2), decimal.Decimal("1.50"), key, (1, 2)),
        {"when": when},
        meta={"source": "test"},
    )
    stored = Job.objects.get(pk=job.pk)
    assert stored.args == ["2026-01-02", "1.50", str(key), [1, 2]]
    assert stored.kwargs == {"when": "2026-01-02T03:04:05Z"}
    assert stored.meta == {"source": "test"}
    assert job.args == stored.args  # the returned Job holds what the worker will receive


def _nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda: None, "Lambdas cannot be scheduled"),
        (tasks.Helper().method, "bound method"),
        (tasks.Helper.static, "does not import|Cannot schedule"),
        ("tests.testapp.tasks.missing", "has no attribute 'missing'"),
        ("tests.testapp.no_such_module.fn", "No module named"),
        ("tests.testapp.tasks.NOT_CALLABLE", "not a declared job"),
        ("tests.testapp.tasks.undeclared", "not a declared job; decorate it with @async_queue.job"),
        (tasks.undeclared, "not a declared job"),
        ("os.system", "outside the installed apps"),
        ("builtins.eval", "outside the installed apps"),
        (print, "outside the installed apps"),
        (
            "django.contrib.auth.password_validation.get_password_validators",
            "not a declared job",
        ),
        ("not a path", "not a dotted path"),
        (42, "not callable"),
    ],
)
def test_bad_functions_are_rejected_at_call_time(function, message):
    with pytest.raises(ScheduleError, match=message):
        schedule(function)
    assert not Job.objects.exists()


def test_nested_functions_are_rejected():
    def inner():
        pass

    with pytest.raises(ScheduleError, match="defined inside a function"):
        schedule(inner)


def test_disallowed_names_raise_job_not_allowed_a_schedule_error():
    with pytest.raises(JobNotAllowed):
        schedule("subprocess.run")
    assert issubclass(JobNotAllowed, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"args": {"a": 1}}, "args must be a list or tuple"),
        ({"args": "abc"}, "args must be a list or tuple"),
        ({"kwargs": [1]}, "kwargs must be a dict"),
        ({"kwargs": {1: "a"}}, "kwargs keys must be strings"),
        ({"args": [{1, 2}]}, r"args\[0\] cannot be stored as JSON .*Pass a list"),
        ({"kwargs": {"data": b"x"}}, r"kwargs\['data'\] .*Pass text"),
        ({"kwargs": {"n": {"deep": [float("nan")]}}}, r"kwargs\['n'\]\['deep'\]\[0\]"),
        ({"args": [object()]}, r"args\[0\] cannot be stored as JSON"),
        ({"args": [_nested(10_000)]}, "nested too deeply"),
        ({"meta": []}, "meta must be a dict"),
        ({"run_after": dt.datetime(2030, 1, 1)}, "naive datetime"),
        ({"run_after": "tomorrow"}, "run_after must be an aware datetime or a timedelta"),
        ({"priority": True}, "priority must be an integer"),
        ({"priority": 2**40}, "priority must be an integer"),
        ({"max_attempts": 0}, "max_attempts must be an integer from 1"),
        ({"queue": ""}, "queue must be a non-empty name"),
        ({"user": "bob"}, "user must be a user instance"),
    ],
)
def test_bad_arguments_raise_schedule_error_and_write_nothing(kwargs, message):
    with pytest.raises(ScheduleError, match=message):
        schedule(tasks.echo, **kwargs)
    assert not Job.objects.exists()


def test_model_instances_are_refused_with_a_hint():
    counter = Counter.objects.create(name="x")
    with pytest.raises(ScheduleError, match="Pass its primary key"):
        schedule(tasks.echo, [counter])


def test_payload_size_limit_default_is_one_mebibyte():
    with pytest.raises(ScheduleError, match="over the 1048576-byte limit"):
        schedule(tasks.echo, kwargs={"blob": "x" * (1024 * 1024)})
    schedule(tasks.echo, kwargs={"blob": "x" * (1000 * 1000)})
    assert Job.objects.count() == 1


@override_settings(ASYNC_QUEUE={"MAX_PAYLOAD_BYTES": 100})
def test_payload_size_limit_is_configurable():
    with pytest.raises(ScheduleError, match="over the 100-byte limit"):
        schedule(tasks.echo, ["y" * 100])


def test_run_after_timedelta_uses_the_database_clock():
    job = schedule(tasks.increment, run_after=dt.timedelta(minutes=5))
    assert job.run_after - job.created_at == dt.timedelta(minutes=5)
    assert not Job.objects.due().exists()


def test_run_after_aware_datetime_and_options_are_stored():
    user = User.objects.create_user("ann")
    when = timezone.now() + dt.timedelta(hours=1)
    job = schedule(
        tasks.increment, run_after=when, priority=7, queue="mail", max_attempts=2, user=user
    )
    stored = Job.objects.get(pk=job.pk)
    assert (stored.run_after, stored.priority, stored.queue, stored.max_attempts) == (
        when,
        7,
        "mail",
        2,
    )
    assert stored.user == user


def test_anonymous_user_is_stored_as_none():
    assert schedule(tasks.increment, user=AnonymousUser()).user_id is None


def test_deschedule_cancels_queued_jobs_with_the_same_name_and_arguments():
    same = [schedule(tasks.echo, [1], {"b": 2, "a": 1}) for _ in range(2)]
    other_args = schedule(tasks.echo, [2], {"a": 1, "b": 2})
    other_name = schedule(tasks.record, [1], {"a": 1, "b": 2})
    assert deschedule(tasks.echo, [1], {"a": 1, "b": 2}) == 2
    assert {j.pk for j in Job.objects.cancelled()} == {j.pk for j in same}
    assert set(Job.objects.queued().values_list("pk", flat=True)) == {other_args.pk, other_name.pk}
    assert deschedule("tests.testapp.tasks.echo", [1], {"a": 1, "b": 2}) == 0
