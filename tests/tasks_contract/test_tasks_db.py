# Ported from django-tasks-db (https://github.com/RealOrangeOne/django-tasks-db),
# tests/tests.py at commit c7230a36520ac82eda6b37e70089b134f4178adf. Changed only:
# - names: django.tasks for the django_tasks backport (InvalidTask for InvalidTaskError),
#   this backend for DatabaseBackend, Job rows for DBTaskResult rows (StoredTask reads
#   one through DBTaskResult's names; ready/successful are due/succeeded), the test
#   settings' TASKS and the tasks' module;
# - how the worker runs: flush_queue, in this process (run_worker, mapping db_worker's
#   options: its default queue 'default', queue_name='*' for all, max_tasks=N as
#   --jobs N) or as a subprocess (--forever unless --batch; it has no --worker-id, so
#   a test reads the id the worker chose); start_worker returns once the worker has
#   started (Django starts slower here than the peer's one-second allowance), and
#   its wait() allows two more seconds to exit;
# - the worker processes' output pipes are closed at tearDown (warnings are errors here);
# - the two tests expected to fail run their cases without subTest(), inside which
#   pytest cannot see a failure as the expected one;
# - statement counts: this worker's, named in support.py, where the peer pins its own;
#   the worker test case prepares the worker's session first and runs crash recovery
#   once per run, so that the counts depend on neither test order nor machine speed.
#
# Copyright (c) Jake Howard and individual contributors.
# All rights reserved.
#
# Redistribution and use in source and binary forms, with or without modification,
# are permitted provided that the following conditions are met:
#
#     1. Redistributions of source code must retain the above copyright notice,
#        this list of conditions and the following disclaimer.
#
#     2. Redistributions in binary form must reproduce the above copyright
#        notice, this list of conditions and the following disclaimer in the
#        documentation and/or other materials provided with the distribution.
#
#     3. Neither the name of the copyright holder nor the names of its
#        contributors may be used to endorse or promote products derived from
#        this software without specific prior written permission.
#
# THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND
# ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED
# WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
# DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT OWNER OR CONTRIBUTORS BE LIABLE FOR
# ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES
# (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES;
# LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON
# ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
# (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS
# SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

# ruff: noqa: B018, PT009, PT027, SIM117  (unittest style, as upstream)

"""django-tasks-db's tests: a database backend, its worker, and worker processes.

Not ported, as they test django-tasks-db's own parts, which this project does
not have or does differently: its model (``test_invalid_task_path``,
``test_missing_task_path``, ``test_task_name`` of the backend test case, the
priority constraint, the ready index, the 0016 migration, the
``DBTaskResultOrderingTestCase``, ``AdminTestCase``), its ``id_function`` option
(four tests), its row locking helpers (``get_locked``, ``exclusive_transaction``:
six tests and ``ConnectionExclusiveTranscationTestCase``), ``CompatTestCase``, its
``prune_db_task_results`` command (``purge_jobs`` here) and its ``db_worker``
command's own options and output: ``--backend`` (``test_doesnt_process_different_backend``,
``test_unknown_backend``, ``test_incorrect_backend``), ``--exclude-queues`` (three
tests), ``--interval``, ``--max-tasks`` and ``--worker-id`` validation (six tests)
and ``test_verbose_logging``. This worker runs the jobs of one database, whichever
backend alias enqueued them, from the queues ``--queue`` names (or all).
"""

import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any, cast
from unittest import skipIf

import pytest

pytest.importorskip("django.tasks", reason="django.tasks needs Django 6.0+")

from django.conf import settings
from django.db import connection, connections, transaction
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.base import Task
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.test import TransactionTestCase, override_settings
from django.test.testcases import _deferredSkip
from django.utils import timezone

from async_queue import Job
from async_queue.backends import QueueBackend
from async_queue.models import Worker
from tests.conftest import ROOT, child_env

from . import tasks_db_tasks as test_tasks
from .support import (
    BACKEND,
    PER_FAILING_TASK,
    PER_TASK,
    RUN_NOTHING,
    RUN_ONE,
    RUN_ONE_FAILING,
    StoredTask,
    get_random_id,
    prepare_worker_session,
    task_result,
)
from .support import run_worker as run_flush_queue

DatabaseBackend = QueueBackend
DBTaskResult = StoredTask


def skipIfInMemoryDB() -> Any:
    return _deferredSkip(
        lambda: connection.vendor == "sqlite" and connection.is_in_memory_db(),
        "Tests cannot run on in-memory DB",
        "skipIfInMemoryDB",
    )


TASKS_SETTINGS = {
    "default": {
        "BACKEND": BACKEND,
        "QUEUES": ["default", "queue-1"],
    }
}


@override_settings(TASKS=TASKS_SETTINGS)
class DatabaseBackendTestCase(TransactionTestCase):
    @contextlib.contextmanager
    def _capture_task_enqueued_signal(
        self,
    ) -> Iterator[list[tuple[type[DatabaseBackend], Any]]]:
        received: list[tuple[type[DatabaseBackend], Any]] = []

        def capture_signal(sender: type[DatabaseBackend], task_result: Any, **kwargs: Any) -> None:
            received.append((sender, task_result))

        task_enqueued.connect(capture_signal, dispatch_uid="db_enqueue_signal", weak=False)
        try:
            yield received
        finally:
            task_enqueued.disconnect(capture_signal, dispatch_uid="db_enqueue_signal")

    def get_task_count_in_new_connection(self) -> int:
        """
        See what other connections see
        """
        new_connection = connections.create_connection("default")
        try:
            with new_connection.cursor() as c:
                c.execute(str(Job.objects.values("id").query))
                return len(c.fetchall())
        finally:
            new_connection.close()

    def test_using_correct_backend(self) -> None:
        self.assertEqual(default_task_backend, task_backends["default"])
        self.assertIsInstance(task_backends["default"], DatabaseBackend)
        self.assertEqual(default_task_backend.alias, "default")
        self.assertEqual(default_task_backend.options, {})

    @pytest.mark.xfail(
        strict=True,
        raises=ValueError,
        reason="A result's id is its job's primary key, a number, not a UUID.",
    )
    def test_enqueue_task(self) -> None:
        for task in [test_tasks.noop_task, test_tasks.noop_task_async]:
            with self.assertNumQueries(1):
                with self._capture_task_enqueued_signal() as received:
                    result = cast(Task, task).enqueue(1, two=3)

                self.assertEqual(uuid.UUID(result.id).version, 4)
                self.assertEqual(result.status, TaskResultStatus.READY)
                self.assertFalse(result.is_finished)
                self.assertIsNone(result.started_at)
                self.assertIsNone(result.last_attempted_at)
                self.assertIsNone(result.finished_at)
                with self.assertRaisesMessage(ValueError, "Task has not finished yet"):
                    result.return_value
                self.assertEqual(result.task, task)
                self.assertEqual(result.args, [1])
                self.assertEqual(result.kwargs, {"two": 3})
                self.assertEqual(result.attempts, 0)

                self.assertEqual(received, [(DatabaseBackend, result)])

    @pytest.mark.xfail(
        strict=True,
        raises=ValueError,
        reason="A result's id is its job's primary key, a number, not a UUID.",
    )
    async def test_enqueue_task_async(self) -> None:
        for task in [test_tasks.noop_task, test_tasks.noop_task_async]:
            if True:
                with self._capture_task_enqueued_signal() as received:
                    result = await cast(Task, task).aenqueue()

                self.assertEqual(uuid.UUID(result.id).version, 4)
                self.assertEqual(result.status, TaskResultStatus.READY)
                self.assertFalse(result.is_finished)
                self.assertIsNone(result.started_at)
                self.assertIsNone(result.last_attempted_at)
                self.assertIsNone(result.finished_at)
                with self.assertRaisesMessage(ValueError, "Task has not finished yet"):
                    result.return_value
                self.assertEqual(result.task, task)
                self.assertEqual(result.args, [])
                self.assertEqual(result.kwargs, {})
                self.assertEqual(result.attempts, 0)

                self.assertEqual(received, [(DatabaseBackend, result)])

    def test_get_result(self) -> None:
        with self.assertNumQueries(1):
            result = default_task_backend.enqueue(test_tasks.noop_task, [], {})

        with self.assertNumQueries(1):
            new_result = default_task_backend.get_result(result.id)

        self.assertEqual(result, new_result)

    async def test_get_result_async(self) -> None:
        result = await default_task_backend.aenqueue(test_tasks.noop_task, [], {})

        new_result = await default_task_backend.aget_result(result.id)

        self.assertEqual(result, new_result)

    def test_refresh_result(self) -> None:
        result = default_task_backend.enqueue(test_tasks.calculate_meaning_of_life, (), {})

        Job.objects.all().update(
            status="succeeded",
            started_at=timezone.now(),
            finished_at=timezone.now(),
            result=42,
            attempts=1,
            worker=get_random_id(),
        )

        self.assertEqual(result.status, TaskResultStatus.READY)
        self.assertFalse(result.is_finished)
        self.assertIsNone(result.started_at)
        self.assertIsNone(result.last_attempted_at)
        self.assertIsNone(result.finished_at)
        self.assertEqual(result.attempts, 0)

        with self.assertNumQueries(1):
            result.refresh()

        self.assertIsNotNone(result.started_at)
        self.assertIsNotNone(result.last_attempted_at)
        self.assertIsNotNone(result.finished_at)
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertTrue(result.is_finished)
        self.assertEqual(result.return_value, 42)
        self.assertEqual(result.attempts, 1)

    async def test_refresh_result_async(self) -> None:
        result = await default_task_backend.aenqueue(test_tasks.calculate_meaning_of_life, (), {})

        await Job.objects.all().aupdate(
            status="succeeded",
            started_at=timezone.now(),
            finished_at=timezone.now(),
            result=42,
            attempts=1,
            worker=get_random_id(),
        )

        self.assertEqual(result.status, TaskResultStatus.READY)
        self.assertFalse(result.is_finished)
        self.assertIsNone(result.started_at)
        self.assertIsNone(result.last_attempted_at)
        self.assertIsNone(result.finished_at)
        self.assertEqual(result.attempts, 0)

        await result.arefresh()

        self.assertIsNotNone(result.started_at)
        self.assertIsNotNone(result.last_attempted_at)
        self.assertIsNotNone(result.finished_at)
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertTrue(result.is_finished)
        self.assertEqual(result.return_value, 42)
        self.assertEqual(result.attempts, 1)

    def test_get_missing_result(self) -> None:
        with self.assertRaises(TaskResultDoesNotExist):
            default_task_backend.get_result(str(uuid.uuid4()))

    async def test_async_get_missing_result(self) -> None:
        with self.assertRaises(TaskResultDoesNotExist):
            await default_task_backend.aget_result(str(uuid.uuid4()))

    def test_invalid_uuid(self) -> None:
        with self.assertRaises(TaskResultDoesNotExist):
            default_task_backend.get_result("123")

    async def test_async_invalid_uuid(self) -> None:
        with self.assertRaises(TaskResultDoesNotExist):
            await default_task_backend.aget_result("123")

    def test_check(self) -> None:
        errors = list(default_task_backend.check())

        self.assertEqual(len(errors), 0, errors)

    @override_settings(INSTALLED_APPS=[])
    def test_database_backend_app_missing(self) -> None:
        errors = list(default_task_backend.check())

        self.assertEqual(len(errors), 1)
        self.assertIn("async_queue", errors[0].hint)

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": BACKEND,
            }
        }
    )
    def test_doesnt_wait_until_transaction_commit(self) -> None:
        with transaction.atomic():
            result = test_tasks.noop_task.enqueue()

            self.assertIsNotNone(result.enqueued_at)

            self.assertEqual(Job.objects.count(), 1)

            # SQLite locks the table during this transaction
            if connection.vendor != "sqlite":
                self.assertEqual(self.get_task_count_in_new_connection(), 0)

        if connection.vendor != "sqlite":
            self.assertEqual(self.get_task_count_in_new_connection(), 1)

    def test_enqueue_logs(self) -> None:
        with self.assertLogs("django.tasks", level="DEBUG") as captured_logs:
            result = test_tasks.noop_task.enqueue()

        self.assertEqual(len(captured_logs.output), 1)
        self.assertIn("enqueued", captured_logs.output[0])
        self.assertIn(result.id, captured_logs.output[0])

    def test_run_after_tz(self) -> None:
        for use_tz in [True, False]:
            with self.subTest(use_tz=use_tz):
                with override_settings(USE_TZ=use_tz):
                    result = test_tasks.noop_task.enqueue()
                    self.assertIsNone(task_result(Job.objects.get(id=result.id)).task.run_after)

    def test_validate_on_enqueue(self) -> None:
        with override_settings(
            TASKS={
                "default": {
                    "BACKEND": BACKEND,
                    "QUEUES": ["unknown_queue"],
                }
            }
        ):
            task_with_custom_queue_name = test_tasks.noop_task.using(queue_name="unknown_queue")

        with self.assertRaisesMessage(
            InvalidTask, "Queue 'unknown_queue' is not valid for backend"
        ):
            task_with_custom_queue_name.enqueue()

    async def test_validate_on_aenqueue(self) -> None:
        with override_settings(
            TASKS={
                "default": {
                    "BACKEND": BACKEND,
                    "QUEUES": ["unknown_queue"],
                }
            }
        ):
            task_with_custom_queue_name = test_tasks.noop_task.using(queue_name="unknown_queue")

        with self.assertRaisesMessage(
            InvalidTask, "Queue 'unknown_queue' is not valid for backend"
        ):
            await task_with_custom_queue_name.aenqueue()


def run_worker(queue_name: str = "default", max_tasks: int | None = None, **options: Any) -> None:
    """db_worker's options as flush_queue's: it runs the queue 'default' unless told
    otherwise, '*' is every queue, max_tasks is --jobs."""
    if queue_name != "*":
        options["queue"] = queue_name.split(",")
    if max_tasks is not None:
        options["jobs"] = max_tasks
    run_flush_queue(**options)


@override_settings(
    TASKS={
        "default": {
            "BACKEND": BACKEND,
            "QUEUES": ["default", "queue-1"],
        },
        "dummy": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"},
    },
    # Crash recovery once per run, so that the counts do not depend on the machine's speed.
    ASYNC_QUEUE={**settings.ASYNC_QUEUE, "RECOVERY_INTERVAL": 60},
)
class DatabaseBackendWorkerTestCase(TransactionTestCase):
    run_worker = staticmethod(run_worker)

    def setUp(self) -> None:
        prepare_worker_session()

    def test_run_enqueued_task(self) -> None:
        for task in [
            test_tasks.noop_task,
            # test_tasks.noop_task_async,
        ]:
            with self.subTest(task):
                result = cast(Task, task).enqueue()
                self.assertEqual(Job.objects.due().count(), 1)

                self.assertEqual(result.status, TaskResultStatus.READY)

                with self.assertNumQueries(RUN_ONE):
                    self.run_worker()

                self.assertEqual(result.status, TaskResultStatus.READY)
                self.assertEqual(result.attempts, 0)
                result.refresh()
                self.assertIsNotNone(result.started_at)
                self.assertIsNotNone(result.last_attempted_at)
                self.assertIsNotNone(result.finished_at)
                self.assertGreaterEqual(result.started_at, result.enqueued_at)
                self.assertGreaterEqual(result.finished_at, result.started_at)
                self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
                self.assertEqual(result.attempts, 1)

                self.assertEqual(Job.objects.due().count(), 0)

    def test_batch_processes_all_tasks(self) -> None:
        for _ in range(3):
            test_tasks.noop_task.enqueue()
        test_tasks.failing_task_value_error.enqueue()

        self.assertEqual(Job.objects.due().count(), 4)

        with self.assertNumQueries(RUN_NOTHING + 3 * PER_TASK + PER_FAILING_TASK):
            self.run_worker()

        self.assertEqual(Job.objects.due().count(), 0)
        self.assertEqual(Job.objects.succeeded().count(), 3)
        self.assertEqual(Job.objects.failed().count(), 1)

    def test_no_tasks(self) -> None:
        with self.assertNumQueries(RUN_NOTHING):
            self.run_worker()

    def test_doesnt_process_different_queue(self) -> None:
        result = test_tasks.noop_task.using(queue_name="queue-1").enqueue()

        self.assertEqual(Job.objects.due().count(), 1)

        with self.assertNumQueries(RUN_NOTHING):
            self.run_worker()

        self.assertEqual(Job.objects.due().count(), 1)

        with self.assertNumQueries(RUN_ONE):
            self.run_worker(queue_name=result.task.queue_name)

        self.assertEqual(Job.objects.due().count(), 0)

    def test_process_all_queues(self) -> None:
        test_tasks.noop_task.using(queue_name="queue-1").enqueue()

        self.assertEqual(Job.objects.due().count(), 1)

        with self.assertNumQueries(RUN_NOTHING):
            self.run_worker()

        self.assertEqual(Job.objects.due().count(), 1)

        with self.assertNumQueries(RUN_ONE):
            self.run_worker(queue_name="*")

        self.assertEqual(Job.objects.due().count(), 0)

    def test_failing_task(self) -> None:
        result = test_tasks.failing_task_value_error.enqueue()
        self.assertEqual(Job.objects.due().count(), 1)

        with self.assertNumQueries(RUN_ONE_FAILING):
            self.run_worker()

        self.assertEqual(result.status, TaskResultStatus.READY)
        result.refresh()
        self.assertIsNotNone(result.started_at)
        self.assertIsNotNone(result.last_attempted_at)
        self.assertIsNotNone(result.finished_at)

        self.assertGreaterEqual(result.started_at, result.enqueued_at)
        self.assertGreaterEqual(result.finished_at, result.started_at)
        self.assertEqual(result.status, TaskResultStatus.FAILED)
        with self.assertRaisesMessage(ValueError, "Task failed"):
            result.return_value

        self.assertEqual(result.errors[0].exception_class, ValueError)
        traceback = result.errors[0].traceback
        self.assertTrue(
            traceback and traceback.endswith("ValueError: This task failed due to ValueError\n"),
            traceback,
        )

        self.assertEqual(Job.objects.due().count(), 0)

    def test_complex_exception(self) -> None:
        result = test_tasks.complex_exception.enqueue()
        self.assertEqual(Job.objects.due().count(), 1)

        with self.assertNumQueries(RUN_ONE_FAILING):
            self.run_worker()

        self.assertEqual(result.status, TaskResultStatus.READY)
        result.refresh()
        self.assertIsNotNone(result.started_at)
        self.assertIsNotNone(result.last_attempted_at)
        self.assertIsNotNone(result.finished_at)

        self.assertGreaterEqual(result.started_at, result.enqueued_at)
        self.assertGreaterEqual(result.finished_at, result.started_at)
        self.assertEqual(result.status, TaskResultStatus.FAILED)
        with self.assertRaisesMessage(ValueError, "Task failed"):
            result.return_value

        self.assertEqual(result.errors[0].exception_class, ValueError)
        self.assertIn('ValueError(ValueError("This task failed"))', result.errors[0].traceback)

        self.assertEqual(Job.objects.due().count(), 0)

    @pytest.mark.xfail(
        strict=True,
        raises=AssertionError,
        reason="A return value is held to Django's normalize_json, as Django's immediate "
        "backend holds it: the task fails with its TypeError 'Unsupported type: ...', "
        "not json's 'is not JSON serializable'.",
    )
    def test_complex_return_value(self) -> None:
        result = test_tasks.complex_return_value.enqueue()

        self.run_worker()

        result.refresh()

        self.assertEqual(result.status, TaskResultStatus.FAILED)
        self.assertIsNotNone(result.started_at)
        self.assertIsNotNone(result.last_attempted_at)
        self.assertIsNotNone(result.finished_at)
        self.assertGreaterEqual(result.started_at, result.enqueued_at)
        self.assertGreaterEqual(result.finished_at, result.started_at)

        self.assertIsNone(result._return_value)
        self.assertEqual(result.errors[0].exception_class, TypeError)
        self.assertIn("is not JSON serializable", result.errors[0].traceback)

    def test_run_after(self) -> None:
        result = test_tasks.noop_task.using(
            run_after=timezone.now() + timedelta(hours=10)
        ).enqueue()

        self.assertEqual(Job.objects.count(), 1)
        self.assertEqual(Job.objects.due().count(), 0)

        with self.assertNumQueries(RUN_NOTHING):
            self.run_worker()

        self.assertEqual(Job.objects.count(), 1)
        self.assertEqual(Job.objects.due().count(), 0)
        self.assertEqual(Job.objects.succeeded().count(), 0)

        Job.objects.filter(id=result.id).update(run_after=timezone.now())

        self.assertEqual(Job.objects.due().count(), 1)

        with self.assertNumQueries(RUN_ONE):
            self.run_worker()

        self.assertEqual(Job.objects.due().count(), 0)
        self.assertEqual(Job.objects.succeeded().count(), 1)

    @pytest.mark.xfail(
        strict=True,
        raises=AssertionError,
        reason="A task enqueued without run_after is due from when it was enqueued, so among "
        "tasks not yet due, it sorts before a task of the same priority deferred to the "
        "future; the peer stores 'no run_after' as the largest date. The tasks that are due "
        "run in the same order.",
    )
    def test_run_after_priority(self) -> None:
        old_task = test_tasks.noop_task.using(
            priority=20, run_after=timezone.now() - timedelta(hours=2)
        ).enqueue()

        very_old_task = test_tasks.noop_task.using(
            priority=20, run_after=timezone.now() - timedelta(hours=10)
        ).enqueue()

        far_future_result = test_tasks.noop_task.using(
            run_after=timezone.now() + timedelta(hours=10)
        ).enqueue()

        high_priority_far_future_result = test_tasks.noop_task.using(
            priority=10, run_after=timezone.now() + timedelta(hours=10)
        ).enqueue()

        future_result = test_tasks.noop_task.using(
            run_after=timezone.now() + timedelta(hours=2)
        ).enqueue()

        high_priority_result = test_tasks.noop_task.using(priority=10).enqueue()

        low_priority_result = test_tasks.noop_task.using(priority=2).enqueue()
        lower_priority_result = test_tasks.noop_task.using(priority=-2).enqueue()

        self.assertEqual(
            [task_result(dbt) for dbt in Job.objects.in_claim_order()],
            [
                very_old_task,
                old_task,
                high_priority_far_future_result,
                high_priority_result,
                low_priority_result,
                future_result,
                far_future_result,
                lower_priority_result,
            ],
        )

        self.assertEqual(
            [task_result(dbt) for dbt in Job.objects.due().in_claim_order()],
            [
                very_old_task,
                old_task,
                high_priority_result,
                low_priority_result,
                lower_priority_result,
            ],
        )

    def test_invalid_task_path(self) -> None:
        db_task_result = DBTaskResult.create(
            args=[["exit", "1"]],
            kwargs={},
            task_path="subprocess.check_output",
        )

        self.run_worker()

        db_task_result.refresh_from_db()

        self.assertEqual(db_task_result.status, TaskResultStatus.FAILED)

    def test_missing_task_path(self) -> None:
        db_task_result = DBTaskResult.create(
            args=[],
            kwargs={},
            task_path="missing.func",
        )

        self.run_worker()

        db_task_result.refresh_from_db()

        self.assertEqual(db_task_result.status, TaskResultStatus.FAILED)

    def test_worker_doesnt_exit(self) -> None:
        result = test_tasks.exit_task.enqueue()

        self.run_worker()

        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.FAILED)

    @skipIf(connection.vendor == "sqlite", "SQLite locks the entire database")
    def test_worker_with_locked_rows(self) -> None:
        result_1 = test_tasks.noop_task.enqueue()
        new_connection = connections.create_connection("default")

        with transaction.atomic():
            locked_tasks_query = str(Job.objects.select_for_update().query)

        try:
            # Start a transaction in the other connection
            with new_connection.cursor() as c:
                c.execute("BEGIN")

            # Lock the current rows in the table
            with new_connection.cursor() as c:
                c.execute(locked_tasks_query)
                results = list(c.fetchall())
            self.assertEqual(len(results), 1)

            # Add another task which isn't locked
            result_2 = test_tasks.noop_task.enqueue()

            self.run_worker()
        finally:
            new_connection.close()

        result_1.refresh()
        result_2.refresh()

        self.assertEqual(result_1.status, TaskResultStatus.READY)
        self.assertEqual(result_2.status, TaskResultStatus.SUCCESSFUL)

    @pytest.mark.xfail(
        strict=True,
        raises=AssertionError,
        reason="flush_queue --jobs N (db_worker's --max-tasks N) prints one line per task, "
        "not the peer's 'Run maximum tasks (N)'.",
    )
    def test_max_tasks(self) -> None:
        results = [test_tasks.noop_task.enqueue() for _ in range(5)]

        stdout = StringIO()
        self.run_worker(max_tasks=2, stdout=stdout, verbosity=3)

        self.assertIn("Run maximum tasks (2)", stdout.getvalue())

        for result in results:
            result.refresh()

        statuses = Counter(result.status for result in results)

        self.assertEqual(statuses[TaskResultStatus.SUCCESSFUL], 2)
        self.assertEqual(statuses[TaskResultStatus.READY], 3)

    def test_takes_context(self) -> None:
        result = test_tasks.get_task_id.enqueue()

        self.run_worker()

        result.refresh()

        self.assertEqual(result.return_value, result.id)

    def test_context(self) -> None:
        result = test_tasks.test_context.enqueue(1)

        self.run_worker()
        result.refresh()

        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)

    def test_task_import_string(self) -> None:
        db_task_result = DBTaskResult.create(
            args=[],
            kwargs={},
            task_path="tests.tasks_contract.tasks_db_tasks.some_test",
        )
        self.run_worker()
        db_task_result.refresh_from_db()

        self.assertEqual(db_task_result.status, TaskResultStatus.FAILED)
        self.assertIn("ImportError", db_task_result.traceback)


@override_settings(
    TASKS={
        "default": {
            "BACKEND": BACKEND,
        },
    }
)
class DatabaseTaskResultTestCase(TransactionTestCase):
    def execute_in_new_connection(self, sql: Any) -> Any:
        if not isinstance(sql, str):
            sql = str(sql.query)
        new_connection = connections.create_connection("default")
        try:
            with new_connection.cursor() as c:
                c.execute(sql)
                return cast(list, c.fetchall())
        finally:
            new_connection.close()

    def test_cross_connection(self) -> None:
        test_tasks.noop_task.enqueue()
        test_tasks.noop_task.enqueue()

        self.assertEqual(Job.objects.count(), 2)

        self.assertEqual(Job.objects.using("default").count(), 2)

        self.assertEqual(
            len(self.execute_in_new_connection(Job.objects.all())),
            2,
        )


class WorkerProcess(subprocess.Popen):
    """A worker process that gets longer to exit than the peer's tests allow: an idle
    worker notices a stop at its next quarter-second wait, then ends its lease, and
    Django takes longer to start and end on a slow machine."""

    EXIT_ALLOWANCE = 2.0

    def wait(self, timeout: float | None = None) -> int:
        return super().wait(None if timeout is None else timeout + self.EXIT_ALLOWANCE)


@override_settings(
    TASKS={
        "default": {
            "BACKEND": BACKEND,
        },
    }
)
@skipIfInMemoryDB()
class DatabaseWorkerProcessTestCase(TransactionTestCase):
    WORKER_STARTUP_TIME = 1

    def setUp(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def tearDown(self) -> None:
        # Try n times to kill any remaining child processes
        for n in range(20):
            for process in self.processes:
                if process.poll() is None:
                    if n >= 5:
                        print("Still waiting for process", process.pid, process.args)
                    process.kill()
                    process.wait(1)
        for process in self.processes:
            if process.stdout is not None:
                process.stdout.close()

    def start_worker(
        self,
        args: list[str] | None = None,
        *,
        debug: bool = False,
    ) -> subprocess.Popen:
        if args is None:
            args = []

        if "--batch" in args:
            args = [arg for arg in args if arg != "--batch"]
        else:
            args = ["--forever", *args]

        p = WorkerProcess(
            [
                sys.executable,
                "-m",
                "django",
                "flush_queue",
                "--verbosity",
                "3",
                *args,
            ],
            stdout=None if debug else subprocess.PIPE,
            stderr=None if debug else subprocess.STDOUT,
            env=child_env(),
            cwd=ROOT,
            text=True,
        )
        self.processes.append(p)
        # Until the worker has registered (its first claim follows at once), or has ended.
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            if Worker.objects.filter(pid=p.pid).exists():
                break
            time.sleep(0.05)
        return p

    def worker_id(self, process: subprocess.Popen) -> str:
        return Worker.objects.get(pid=process.pid).name

    def test_run_subprocess(self) -> None:
        result = test_tasks.noop_task.enqueue()
        process = self.start_worker(["--batch"])
        process.wait()
        self.assertEqual(process.returncode, 0)

        self.assertEqual(result.status, TaskResultStatus.READY)

        result.refresh()

        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)

    @skipIf(sys.platform == "win32", "Terminate is always forceful on Windows")
    def test_interrupt_no_tasks(self) -> None:
        process = self.start_worker()

        time.sleep(self.WORKER_STARTUP_TIME)

        process.terminate()

        process.wait(timeout=0.5)
        self.assertEqual(process.returncode, 0)

    @skipIf(sys.platform == "win32", "Cannot emulate CTRL-C on Windows")
    def test_interrupt_signals(self) -> None:
        for sig in [
            signal.SIGINT,  # ctrl-c
            signal.SIGTERM,
        ]:
            with self.subTest(sig):
                result = test_tasks.sleep_for.enqueue(2)
                self.assertEqual(DBTaskResult.get(id=result.id).worker_ids, [])

                self.assertGreater(result.args[0], self.WORKER_STARTUP_TIME)

                process = self.start_worker()

                # Make sure the task is running by now
                time.sleep(self.WORKER_STARTUP_TIME)

                result.refresh()
                self.assertEqual(result.status, TaskResultStatus.RUNNING)
                self.assertNotEqual(DBTaskResult.get(id=result.id).worker_ids, [])

                process.send_signal(sig)

                process.wait(timeout=2)

                self.assertEqual(process.returncode, 0)

                result.refresh()

                self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)

    @skipIf(sys.platform == "win32", "Cannot emulate CTRL-C on Windows")
    @pytest.mark.xfail(
        strict=True,
        raises=AssertionError,
        reason="A second SIGINT aborts the running task: its transaction rolls back, it is "
        "queued again (READY, due at once) and the worker exits 1. The peer marks it "
        "FAILED (SystemExit) and exits 0.",
    )
    def test_repeat_ctrl_c(self) -> None:
        result = test_tasks.hang.enqueue()
        self.assertEqual(DBTaskResult.get(id=result.id).worker_ids, [])

        process = self.start_worker()
        worker_id = self.worker_id(process)

        # Make sure the task is running by now
        time.sleep(self.WORKER_STARTUP_TIME)

        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.RUNNING)
        self.assertEqual(DBTaskResult.get(id=result.id).worker_ids, [worker_id])

        process.send_signal(signal.SIGINT)

        time.sleep(0.5)

        self.assertIsNone(process.poll())
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.RUNNING)
        self.assertEqual(DBTaskResult.get(id=result.id).worker_ids, [worker_id])

        process.send_signal(signal.SIGINT)

        process.wait(timeout=2)

        self.assertEqual(process.returncode, 0)

        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.FAILED)
        self.assertEqual(result.errors[0].exception_class, SystemExit)

    @skipIf(sys.platform == "win32", "Windows doesn't support SIGKILL")
    def test_kill(self) -> None:
        # Required to keep mypy happy
        assert hasattr(signal, "SIGKILL")

        result = test_tasks.hang.enqueue()

        process = self.start_worker()

        # Make sure the task is running by now
        time.sleep(self.WORKER_STARTUP_TIME)

        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.RUNNING)

        process.kill()

        process.wait(timeout=2)

        self.assertEqual(process.returncode, -signal.SIGKILL)

        result.refresh()

        # Upstream leaves a killed worker's task RUNNING (django-tasks-db#46). Here too, right
        # after the kill: another worker's crash recovery requeues it within RECOVERY_INTERVAL.
        self.assertEqual(result.status, TaskResultStatus.RUNNING)

    def test_system_exit_task(self) -> None:
        result = test_tasks.failing_task_system_exit.enqueue()

        process = self.start_worker(["--batch"])
        process.wait(timeout=2)

        self.assertEqual(process.returncode, 0)

        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.FAILED)
        self.assertEqual(result.errors[0].exception_class, SystemExit)

    def test_keyboard_interrupt_task(self) -> None:
        result = test_tasks.failing_task_keyboard_interrupt.enqueue()

        process = self.start_worker(["--batch"])
        process.wait(timeout=2)

        self.assertEqual(process.returncode, 0)

        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.FAILED)
        self.assertEqual(result.errors[0].exception_class, KeyboardInterrupt)

    @pytest.mark.xfail(
        strict=True,
        raises=AssertionError,
        reason="flush_queue prints one line per task it ran, not the peer's lines per state "
        "and its 'exiting gracefully'.",
    )
    def test_multiple_workers(self) -> None:
        results = [test_tasks.sleep_for.enqueue(0.1) for _ in range(10)]

        for _ in range(3):
            self.start_worker(["--batch"])

        time.sleep(self.WORKER_STARTUP_TIME)

        for process in self.processes:
            process.wait(timeout=5)
            self.assertIsNotNone(process.returncode)

        for result in results:
            result.refresh()
            self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)

        all_output = ""

        for process in self.processes:
            stdout_text = process.stdout.read()
            all_output += stdout_text
            self.assertIn("gracefully", stdout_text)

        for result in results:
            # Running and successful
            self.assertEqual(all_output.count(result.id), 2)
