"""Job functions of the fault suite.

Every function that runs a body first appends a line to the out-of-band
execution log (``FAULT_EXEC_LOG``, an append-only file outside the database),
so executions that rolled back are counted too.
"""

import os
import signal
import time

from django.db.models import F

from async_queue import job
from async_queue.progress import current_job, report_progress

from .models import LedgerCounter, LedgerEntry, Slot


def log_execution(kind: str, *fields: object) -> None:
    """Append ``kind job_id pid fields...`` to the execution log (one write, O_APPEND)."""
    path = os.environ.get("FAULT_EXEC_LOG")
    if not path:
        return
    job = current_job()
    line = " ".join(str(part) for part in (kind, job.pk if job else 0, os.getpid(), *fields))
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (line + "\n").encode())
    finally:
        os.close(descriptor)


@job
def ledger(counter: str = "ledger", pause: float = 0, progress: bool = False) -> int:
    """Increment the counter and insert a ledger row, in the job's transaction."""
    log_execution("run")
    job = current_job()
    if progress:
        report_progress(1, 2, "counting")
    LedgerCounter.objects.filter(name=counter).update(value=F("value") + 1)
    if pause:
        time.sleep(pause)
    LedgerEntry.objects.create(job_id=job.pk if job else 0, counter=counter, pid=os.getpid())
    if progress:
        report_progress(2, 2, "done")
    return job.pk if job else 0


@job
def kill_own_worker() -> None:
    """A poison pill: SIGKILL the worker process running this job."""
    log_execution("poison")
    os.kill(os.getpid(), signal.SIGKILL)


@job
def storm(slots: list[int], pause: float = 0) -> None:
    """Increment each slot, logging when the body holds them (monotonic ns, system-wide)."""
    log_execution("enter", time.monotonic_ns(), ",".join(map(str, slots)))
    for pk in slots:
        Slot.objects.filter(pk=pk).update(value=F("value") + 1)
    if pause:
        time.sleep(pause)
    log_execution("leave", time.monotonic_ns(), ",".join(map(str, slots)))
