"""Job functions of the fault rows about connection poolers (rows 23 to 25).

Like ``jobs.py``, each body first appends a line to the out-of-band execution log
(``FAULT_EXEC_LOG``), so executions that rolled back are counted too.
"""

from __future__ import annotations

import os
import time

from django.db import connection

from async_queue import job
from async_queue.progress import current_job, report_progress

from .jobs import log_execution
from .jobs_mechanics import _write_ledger


@job
def idle_in_transaction(counter: str, idle: float) -> int:
    """Write, then wait inside the job's transaction without a statement, then write again."""
    log_execution("run")
    _write_ledger(counter)  # the transaction is open on the server from here
    time.sleep(idle)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # fails if the server ended the idle session
    log_execution("wrote")
    return os.getpid()


@job
def timed_progress(counter: str, writes: int) -> int:
    """A ledger write, then ``writes`` progress reports, each timed in the execution log."""
    log_execution("run")
    _write_ledger(counter)
    for n in range(writes):
        started = time.monotonic()
        report_progress(n + 1, writes + 1, "counting")
        log_execution("progress", f"{time.monotonic() - started:.6f}")
    return os.getpid()


@job
def sleep_in_database(counter: str, seconds: float) -> int:
    """A ledger write, then ``pg_sleep`` inside the job's transaction on its first attempt.

    The sleeping statement shows which backend is the job's connection.
    """
    log_execution("run")
    _write_ledger(counter)
    this = current_job()
    if this is None or this.attempts == 1:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [seconds])
    return os.getpid()
