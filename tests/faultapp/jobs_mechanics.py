"""Job functions of the fault rows about the queue's mechanics: fencing, retries, shutdown,
timeouts, locks and clocks.

Like ``jobs.py``, each body first appends a line to the out-of-band execution log
(``FAULT_EXEC_LOG``), so executions that rolled back are counted too.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.db import connection
from django.db.models import F
from django.utils import timezone

from async_queue import job
from async_queue.progress import current_job

from .jobs import log_execution
from .models import LedgerCounter, LedgerEntry


def _attempt() -> int:
    job = current_job()
    return job.attempts if job else 0


def _write_ledger(counter: str) -> None:
    job = current_job()
    LedgerCounter.objects.filter(name=counter).update(value=F("value") + 1)
    LedgerEntry.objects.create(job_id=job.pk if job else 0, counter=counter, pid=os.getpid())


@job
def fenced_ledger(counter: str, pause: float, write_first: bool) -> dict[str, int]:
    """A ledger job whose first attempt is slow: it writes then waits, or waits then writes.

    Only the first attempt waits, so a second runner of the same job (a false
    rescue) overtakes it or queues behind its row lock.
    """
    log_execution("run")
    slow = _attempt() == 1
    if slow and not write_first:
        time.sleep(pause)
    _write_ledger(counter)
    log_execution("wrote")
    if slow and write_first:
        time.sleep(pause)
    return {"pid": os.getpid(), "attempt": _attempt()}


@job
def fail_logging_schedule() -> None:
    """Log this attempt's number, its ``run_after`` and ``started_at``, then fail."""
    job = current_job()
    assert job is not None
    log_execution("attempt", job.attempts, job.run_after.isoformat(), job.started_at.isoformat())
    raise RuntimeError(f"attempt {job.attempts} fails on purpose")


@job
def ledger_stalled(counter: str, seconds: float, how: str = "sleep") -> None:
    """Write the ledger, then (first attempt only) stall in ``time.sleep`` or ``pg_sleep``."""
    log_execution("run")
    _write_ledger(counter)
    if _attempt() == 1:
        log_execution("stalled", how)
        _stall(how, seconds)


@job
def stuck(counter: str, seconds: float, how: str) -> None:
    """Write the ledger, then get stuck for ``seconds`` (every attempt) until interrupted.

    Logs when the body started and when it was interrupted (monotonic ns, system-wide).
    """
    log_execution("run", time.monotonic_ns())
    try:
        _write_ledger(counter)
        _stall(how, seconds)
    finally:
        log_execution("interrupted", time.monotonic_ns())


def _stall(how: str, seconds: float) -> None:
    if how == "sleep":
        time.sleep(seconds)
    elif how == "pg_sleep":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [seconds])
    elif how == "cpu":
        end = time.monotonic() + seconds
        total = 0
        while time.monotonic() < end:
            total += sum(range(100))
    else:
        raise ValueError(f"Unknown way to stall: {how!r}")


@job
def advisory_locks_held(pause: float = 0) -> dict[str, Any]:
    """What this job's database session holds while it runs (PostgreSQL; None elsewhere)."""
    log_execution("run")
    if pause:
        time.sleep(pause)
    if connection.vendor != "postgresql":
        return {"advisory": None, "all": None}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE locktype = 'advisory'), count(*) "
            "FROM pg_locks WHERE pid = pg_backend_pid()"
        )
        advisory, total = cursor.fetchone()
    return {"advisory": advisory, "all": total}


@job
def clock_probe() -> dict[str, Any]:
    """The worker's own idea of the time: proves a skewed clock took effect."""
    log_execution("probe")
    return {"now": timezone.now().isoformat(), "time": time.time()}


@job
def interrupt_first_attempt(counter: str) -> None:
    """Write the ledger, then raise KeyboardInterrupt itself on the first attempt (row 30)."""
    log_execution("run")
    _write_ledger(counter)
    if _attempt() == 1:
        raise KeyboardInterrupt("raised by the job itself")
