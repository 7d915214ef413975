"""The django.tasks backend, end to end: enqueue -> flush_queue -> get_result.

Django's and django-tasks-db's own suites run against it in tests/tasks_contract;
these are the backend's own promises on top: the statement counts, the options,
the argument contract's errors, and the signals for every final state.
"""

import datetime as dt
import decimal
import json
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

tasks_module = pytest.importorskip("django.tasks", reason="django.tasks needs Django 6.0+")

from django.tasks import TaskResultStatus, default_task_backend  # noqa: E402
from django.tasks.exceptions import TaskResultDoesNotExist  # noqa: E402
from django.tasks.signals import task_enqueued, task_finished, task_started  # noqa: E402

from async_queue import Job, ScheduleError, cancel  # noqa: E402
from async_queue.worker import execute  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.tasks_contract import backend_tasks  # noqa: E402
from tests.testapp import django_tasks  # noqa: E402
from tests.testapp.models import Counter  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

BACKEND = "async_queue.backends.QueueBackend"


def backend_settings(settings, **options):
    """TASKS with this backend and ``options``."""
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "mail"], **options}}


@pytest.fixture
def signals():
    """Every django.tasks signal sent meanwhile, as ``(name, status, result)``."""
    seen = []

    def record(name):
        def receiver(sender, task_result, **kwargs):
            seen.append((name, task_result.status, task_result))

        return receiver

    receivers = {
        task_enqueued: record("enqueued"),
        task_started: record("started"),
        task_finished: record("finished"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    yield seen
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


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


def test_get_result_rebuilds_the_enqueued_result_deferred_or_not(django_assert_num_queries):
    later = timezone.now() + dt.timedelta(hours=1)
    for task in (django_tasks.add, django_tasks.add.using(run_after=later, priority=-5)):
        result = task.enqueue(1, 2)
        with django_assert_num_queries(1):  # no error can exist yet: none is read
            fetched = default_task_backend.get_result(result.id)
        assert fetched == result
        assert fetched.task.run_after == task.run_after
    # Its run_after is the task's, whatever the row's becomes (a retry moves it).
    Job.objects.filter(pk=int(result.id)).update(run_after=timezone.now())
    assert default_task_backend.get_result(result.id).task.run_after == later


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


def test_enqueue_is_one_statement_in_a_transaction_or_not(django_assert_num_queries):
    with django_assert_num_queries(1):
        django_tasks.add.enqueue(1, 1)
    with transaction.atomic():
        with django_assert_num_queries(1):
            result = django_tasks.add.enqueue(1, 1)
        assert result.id == str(Job.objects.latest("id").pk)


def test_enqueue_inside_a_transaction_has_its_id_and_rolls_back_with_it(signals):
    with transaction.atomic():
        result = django_tasks.add.enqueue(1, 1)
        assert result.id
        assert result.enqueued_at is not None
        assert default_task_backend.get_result(result.id) == result
        assert [name for name, *_ in signals] == ["enqueued"]

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        rolled_back = django_tasks.add.enqueue(1, 1)
        raise Rollback
    assert list(Job.objects.values_list("pk", flat=True)) == [int(result.id)]
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(rolled_back.id)


@pytest.mark.postgres
def test_on_commit_takes_the_id_up_front_and_writes_the_row_at_commit(
    settings, signals, django_assert_num_queries
):
    backend_settings(settings, OPTIONS={"ON_COMMIT": True})
    with transaction.atomic():
        with django_assert_num_queries(1) as captured:  # the id and the time, nothing written
            result = django_tasks.add.enqueue(1, 2)
        assert "nextval" in captured.captured_queries[0]["sql"]
        assert result.id
        assert result.enqueued_at is not None
        assert not Job.objects.filter(pk=int(result.id)).exists()
        assert signals == []
    job = Job.objects.get(pk=int(result.id))
    assert job.created_at == result.enqueued_at
    assert [(name, sent) for name, _, sent in signals] == [("enqueued", result)]
    assert default_task_backend.get_result(result.id) == result

    with pytest.raises(ZeroDivisionError), transaction.atomic():
        django_tasks.add.enqueue(3, 4)
        1 / 0  # noqa: B018
    assert Job.objects.count() == 1
    assert len(signals) == 1
    # Outside a transaction there is no commit to wait for: written at once.
    with django_assert_num_queries(1):
        django_tasks.add.enqueue(5, 6)


def test_on_commit_on_sqlite_still_writes_in_the_transaction(settings):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite has no sequence to take an id from")
    backend_settings(settings, OPTIONS={"ON_COMMIT": True})
    with transaction.atomic():
        result = django_tasks.add.enqueue(1, 2)
        assert Job.objects.filter(pk=int(result.id)).exists()


def test_unknown_or_malformed_ids_raise_task_result_does_not_exist(settings):
    known = django_tasks.add.enqueue(1, 1)
    for bad in ["999999", "not-a-number", "", "1.5", f"0{known.id}", f" {known.id}", "9" * 30]:
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(bad)
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(int(known.id))
    plain = Job.objects.create(name="tests.testapp.tasks.echo")  # not a django.tasks job
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(plain.pk))
    # A result belongs to the backend alias that enqueued it.
    settings.TASKS = {**settings.TASKS, "other": {"BACKEND": BACKEND}}
    from django.tasks import task_backends

    with pytest.raises(TaskResultDoesNotExist, match="not a task of backend 'other'"):
        task_backends["other"].get_result(known.id)


def test_signals_are_sent(signals):
    result = django_tasks.add.enqueue(1, 2)
    Job.objects.get(pk=int(result.id)).execute()
    assert [(name, status) for name, status, _ in signals] == [
        ("enqueued", TaskResultStatus.READY),
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.SUCCESSFUL),
    ]
    assert signals[0][2] is result


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
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is TypeError
    assert "Unsupported type" in result.errors[0].traceback


def test_a_task_fails_on_its_first_exception_by_default(signals, caplog):
    result = django_tasks.explode.enqueue()
    assert Job.objects.get(pk=int(result.id)).max_attempts == 1
    with caplog.at_level("INFO", logger="django.tasks"):
        run(result)
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class for e in result.errors] == [ValueError]
    assert [(name, status) for name, status, _ in signals] == [
        ("enqueued", TaskResultStatus.READY),
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.FAILED),
    ]
    finished = signals[-1][2]
    assert finished.finished_at == result.finished_at is not None
    assert finished.errors == result.errors
    failed = [r for r in caplog.records if r.levelname == "ERROR" and r.name == "django.tasks"]
    assert len(failed) == 1
    assert f"id={result.id}" in failed[0].getMessage()
    assert "state=FAILED" in failed[0].getMessage()
    assert "task exploded" in str(failed[0].exc_info[1])


def test_more_attempts_come_from_the_task_its_declaration_or_the_option(settings, signals):
    backend = default_task_backend
    assert backend.max_attempts(SimpleNamespace(func=len, max_attempts=4)) == 4
    assert backend.max_attempts(backend_tasks.declared_twice) == 2
    assert backend.max_attempts(backend_tasks.fails) == 1

    backend_settings(settings, OPTIONS={"MAX_ATTEMPTS": 3})
    assert default_task_backend.max_attempts(backend_tasks.declared_twice) == 2  # declared wins
    result = backend_tasks.fails.enqueue()
    job = Job.objects.get(pk=int(result.id))
    assert job.max_attempts == 3
    declared = Job.objects.get(pk=int(backend_tasks.declared_twice.enqueue().id))
    assert (declared.max_attempts, declared.timeout) == (2, 30)

    # A failure with attempts left is READY again, and nothing is finished.
    run(result)
    assert result.status == TaskResultStatus.READY
    assert len(result.errors) == 1
    assert "finished" not in [name for name, *_ in signals]
    for _ in range(2):
        Job.objects.filter(pk=job.pk).update(run_after=timezone.now())
        run(result)
    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 3
    assert len(result.worker_ids) == 3
    assert [status for name, status, _ in signals if name == "finished"] == ["FAILED"]


def test_task_finished_is_sent_for_success_and_for_a_cancellation(signals):
    done = run(django_tasks.add.enqueue(1, 2))
    cancelled = django_tasks.add.enqueue(3, 4)
    cancel(Job.objects.get(pk=int(cancelled.id)))
    finished = [(status, sent.id) for name, status, sent in signals if name == "finished"]
    assert finished == [("SUCCESSFUL", done.id), ("FAILED", cancelled.id)]
    cancelled.refresh()
    assert cancelled.status == TaskResultStatus.FAILED
    assert cancelled.errors == []
    assert signals[2][2].return_value == 3
    assert signals[2][2].finished_at == done.finished_at


def test_a_worker_run_reads_only_what_the_signals_need():
    """A first attempt that succeeds costs the backend one read (the finish time, which
    the worker's UPDATE set without reading it back); a failure one more JOIN, no more."""
    succeeded = django_tasks.add.enqueue(1, 2)
    failed = django_tasks.explode.enqueue()
    for result, expected in ((succeeded, '"async_queue_job"'), (failed, '"async_queue_joberror"')):
        job = Job.objects.get(pk=int(result.id))
        with CaptureQueriesContext(connection) as captured:
            execute(job)
        reads = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
        assert len(reads) == 1, reads
        assert reads[0].startswith(f"SELECT {expected}"), reads
        assert '"finished_at"' in reads[0]


def test_due_tasks_run_by_priority_then_run_after():
    now = timezone.now()
    add = django_tasks.add
    order = [
        add.using(priority=20, run_after=now - dt.timedelta(hours=10)).enqueue(1, 0),
        add.using(priority=10).enqueue(2, 0),
        add.using(priority=2).enqueue(3, 0),
        add.using(priority=-2).enqueue(4, 0),
    ]
    add.using(priority=10, run_after=now + dt.timedelta(hours=10)).enqueue(5, 0)
    due = [default_task_backend.result_for(job) for job in Job.objects.due().in_claim_order()]
    assert due == order


def test_check_reports_a_missing_app_and_bad_options(settings):
    assert default_task_backend.check() == []
    backend_settings(
        settings,
        OPTIONS={"MAX_ATTEMPTS": 0, "ON_COMMIT": "yes", "DATABASE": "nowhere", "RETRIES": 3},
    )
    ids = sorted(message.id for message in default_task_backend.check())
    assert ids == [f"async_queue.E05{n}" for n in (1, 2, 3, 4)]
    for bad in (True, "3", 2**31):
        backend_settings(settings, OPTIONS={"MAX_ATTEMPTS": bad})
        assert [m.id for m in default_task_backend.check()] == ["async_queue.E052"]
    backend_settings(settings, OPTIONS=[])
    assert [m.id for m in default_task_backend.check()] == ["async_queue.E051"]
    backend_settings(settings)
    settings.INSTALLED_APPS = []
    (message,) = default_task_backend.check()
    assert message.id == "async_queue.E050"
    assert "INSTALLED_APPS" in message.hint


def test_a_project_without_the_app_loads_the_backend_and_is_told_what_is_missing():
    """The backend imports no model, so ``check`` can say what is missing instead of
    the import failing with Django's RuntimeError about the Job model."""
    script = """
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    TASKS={"default": {"BACKEND": "async_queue.backends.QueueBackend"}},
)
django.setup()
import django.tasks  # registers its checks, as a project using tasks does
from django.core import checks

print(json.dumps(sorted({m.id for m in checks.run_checks()})))
"""
    completed = subprocess.run(
        [sys.executable, "-c", f"import json\n{script}"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(completed.stdout) == ["async_queue.E050"]
