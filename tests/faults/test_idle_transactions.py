"""Row 25: a database whose ``idle_in_transaction_session_timeout`` is shorter than a job's pause.

A common production setting: the server ends any session that stays inside a
transaction without a statement for longer. A job's body runs in one
transaction and may wait in it (on an API, a file, a lock), so the worker lifts
the timeout for its job connection: per session on a direct connection, per
transaction behind a pooler. Set here for the whole test database, as an
operator would (``ALTER DATABASE``), and proven in force on a connection of the
test's own first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import DatabaseError, connection

from async_queue import Job, JobError, schedule
from async_queue.models import Worker
from async_queue.sql import second_connection
from tests.conftest import wait_for
from tests.faultapp.models import LedgerCounter
from tests.faults.conftest import report, size
from tests.faults.pgbouncer import pgbouncer  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
FOREVER = ("--forever", "--sleep", "0.1", "-v", "0")
TIMEOUT_MS = 300


@pytest.fixture
def idle_timeout() -> Iterator[int]:
    """The test database ends sessions idle in a transaction for TIMEOUT_MS (new sessions)."""
    name = connection.ops.quote_name(connection.settings_dict["NAME"])
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER DATABASE {name} SET idle_in_transaction_session_timeout = '{TIMEOUT_MS}ms'"
        )
    try:
        yield TIMEOUT_MS
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} RESET idle_in_transaction_session_timeout")


def test_the_timeout_is_in_force(idle_timeout):
    """Without the worker's setting, a session idle in a transaction is ended."""
    probe = second_connection("default")
    try:
        with probe.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT 1")
            time.sleep(idle_timeout / 1000 * 3)
            with pytest.raises(DatabaseError, match="idle-in-transaction timeout"):
                cursor.execute("SELECT 1")
    finally:
        probe.close()


@pytest.mark.parametrize("path", ["direct", "pgbouncer"])
def test_a_job_idle_in_its_transaction_past_the_timeout_succeeds(
    start_worker, ledger, idle_timeout, request, path
):
    """Row 25: jobs idle 3x the timeout inside their transaction, each succeeds at once."""
    jobs = size(4, 20)
    idle = idle_timeout / 1000 * 3
    env = dict(ledger.env)
    if path == "pgbouncer":
        env.update(request.getfixturevalue("pgbouncer").env)
    LedgerCounter.objects.get_or_create(name=ledger.counter)
    ids = [
        schedule(
            "tests.faultapp.jobs_poolers.idle_in_transaction",
            kwargs={"counter": ledger.counter, "idle": idle},
            max_attempts=1,  # a single lost attempt would fail the job
        ).pk
        for _ in range(jobs)
    ]
    workers = [start_worker(*FOREVER, env=env) for _ in range(2)]
    started = time.monotonic()
    wait_for(
        lambda: not Job.objects.filter(pk__in=ids, status__in=["queued", "running"]).exists(),
        timeout=60,
    )
    elapsed = time.monotonic() - started
    errors = list(JobError.objects.filter(job__in=ids).values_list("message", flat=True))
    assert errors == []
    ledger.assert_exactly_once(ids)
    assert sum(ledger.executions().values()) == jobs  # no attempt ran twice
    assert all(worker.process.poll() is None for worker in workers)
    mode = "pooled" if path == "pgbouncer" else "direct"
    assert set(Worker.objects.values_list("mode", flat=True)) == {mode}
    report(
        25,
        "idle_in_transaction_session_timeout",
        path=path,
        mode=mode,
        timeout_ms=idle_timeout,
        idle_in_transaction_s=round(idle, 2),
        jobs=jobs,
        failed_attempts=len(errors),
        executions=sum(ledger.executions().values()),
        counter=ledger.value(),
        seconds=round(elapsed, 1),
    )
