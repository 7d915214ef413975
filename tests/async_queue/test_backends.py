"""The django.tasks backend, end to end: enqueue -> flush_queue -> get_result."""

import datetime as dt
import decimal
import uuid

import pytest
from django.db import transaction
from django.utils import timezone

tasks_module = pytest.importorskip("django.tasks", reason="django.tasks needs Django 6.0+")

from django.tasks import TaskResultStatus, default_task_backend  # noqa: E402
from django.tasks.exceptions import TaskResultDoesNotExist  # noqa: E402
from django.tasks.signals import task_enqueued, task_finished, task_started  # noqa: E402

from async_queue import Job, ScheduleError  # noqa: E402
from async_queue.worker import execute  # noqa: E402
from tests.tasks_contract import backend_tasks  # noqa: E402
from tests.testapp import django_tasks  # noqa: E402
from tests.testapp.models import Counter  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


def run(result):
    """Run ``result``'s job as a worker would, and read the result back."""
    execute(Job.objects.get(pk=int(result.id)))
    result.refresh()
    return result


def test_backend_declares_what_it_supports():
    backend = default_task_backend
    assert backend.supports_defer
    assert backend.supports_priority
    assert backend.supports_get_result
    assert backend.supports_async_task


def test_enqueue_run_and_get_result(manage):
    result = django_tasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    job = Job.objects.get(pk=int(result.id))
    assert (job.name, job.args) == ("tests.testapp.django_tasks.add", [2, 3])
    manage("flush_queue")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.errors == []
    assert len(result.worker_ids) == 1
    assert result.attempts == 1
    fetched = default_task_backend.get_result(result.id)
    assert (fetched.args, fetched.kwargs, fetched.return_value) == ([2, 3], {}, 5)
    assert django_tasks.add.get_result(result.id).id == result.id


def test_using_priority_queue_and_run_after():
    later = timezone.now() + dt.timedelta(hours=1)
    result = django_tasks.send.using(priority=80, run_after=later).enqueue("ann")
    job = Job.objects.get(pk=int(result.id))
    assert (job.priority, job.queue, job.run_after) == (80, "mail", later)
    assert not Job.objects.due().exists()


def test_failing_task_records_errors_with_class_path_and_traceback():
    result = django_tasks.explode.enqueue()
    Job.objects.filter(pk=int(result.id)).update(max_attempts=2)
    job = Job.objects.get(pk=int(result.id))
    job.execute()
    Job.objects.filter(pk=job.pk).update(run_after=job.created_at)
    job.execute()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"] * 2
    assert result.errors[0].exception_class is ValueError
    assert "task exploded" in result.errors[1].traceback
    assert len(result.worker_ids) == 2
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


def test_async_task_runs_in_the_jobs_transaction():
    result = django_tasks.async_add.enqueue(1, 2)
    Job.objects.get(pk=int(result.id)).execute()
    result.refresh()
    assert result.return_value == 3
    assert Counter.objects.filter(name="async-1-2").exists()


def test_task_with_context_sees_its_attempt():
    result = django_tasks.attempt_number.enqueue()
    Job.objects.get(pk=int(result.id)).execute()
    result.refresh()
    assert result.return_value == 1


def test_enqueue_inside_a_transaction_writes_at_commit_and_rollback_writes_nothing():
    with transaction.atomic():
        pending = django_tasks.add.enqueue(1, 1)
        assert pending.id == ""
        assert not Job.objects.exists()
    assert pending.id == str(Job.objects.get().pk)

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        django_tasks.add.enqueue(1, 1)
        raise Rollback
    assert Job.objects.count() == 1


def test_unknown_or_malformed_ids_raise_task_result_does_not_exist():
    for bad in ["999999", "not-a-number", "", "1.5"]:
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(bad)
    plain = Job.objects.create(name="tests.testapp.tasks.echo")  # not a django.tasks job
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(plain.pk))


def test_signals_are_sent():
    seen = []

    def record(signal_name):
        def receiver(sender, task_result, **kwargs):
            seen.append((signal_name, task_result.status))

        return receiver

    receivers = {
        task_enqueued: record("enqueued"),
        task_started: record("started"),
        task_finished: record("finished"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        result = django_tasks.add.enqueue(1, 2)
        Job.objects.get(pk=int(result.id)).execute()
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    assert seen == [
        ("enqueued", TaskResultStatus.READY),
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.SUCCESSFUL),
    ]


def test_aenqueue_and_aget_result():
    from asgiref.sync import async_to_sync

    async def view():
        result = await django_tasks.add.aenqueue(4, 5)
        return result, await default_task_backend.aget_result(result.id)

    result, fetched = async_to_sync(view)()
    assert result.id
    assert fetched.status == TaskResultStatus.READY
    assert fetched.args == [4, 5]


def test_arguments_are_held_to_djangos_contract():
    """Django's normalize_json: its TypeError, which is also a ScheduleError naming the
    element; nothing written. What it accepts is what the task receives."""
    refused = {
        "a datetime": ((dt.datetime(2025, 1, 1),), {}, "args[0]"),
        "a date": ((), {"when": dt.date(2025, 1, 1)}, "kwargs['when']"),
        "a Decimal": ((decimal.Decimal("1.5"),), {}, "args[0]"),
        "a UUID": ((), {"ids": [uuid.uuid4()]}, "kwargs['ids'][0]"),
        "a set": ((), {"tags": {"a"}}, "Pass a list instead"),
    }
    for label, (args, kwargs, named) in refused.items():
        with pytest.raises(TypeError, match="Unsupported type") as caught:
            backend_tasks.echo.enqueue(*args, **kwargs)
        assert isinstance(caught.value, ScheduleError), label
        assert named in str(caught.value), label
    with pytest.raises(ScheduleError, match=r"args\[0\]: Unsupported value"):
        backend_tasks.echo.enqueue(b"\xff")
    with pytest.raises(ScheduleError, match="nested too deeply"):
        deep: list = []
        for _ in range(5000):
            deep = [deep]
        backend_tasks.echo.enqueue(deep)
    assert not Job.objects.exists()

    result = backend_tasks.echo.enqueue((1, 2), b"bytes", key=(3,))
    assert (result.args, result.kwargs) == ([[1, 2], "bytes"], {"key": [3]})
    assert run(result).return_value == {
        "args": [[1, 2], "bytes"],
        "kwargs": {"key": [3]},
        "types": ["list", "str", "list"],
    }


def test_return_values_are_held_to_djangos_contract():
    assert run(backend_tasks.returns_tuple.enqueue()).return_value == [1, "two"]
    result = run(backend_tasks.returns_datetime.enqueue())
    assert result.errors[0].exception_class is TypeError
    assert "Unsupported type" in result.errors[0].traceback
