"""Crash recovery: the running jobs of dead workers go back to the queue.

A worker holds a lease while it lives (``liveness.Lease``: a ``Worker`` row
whose heartbeat a thread refreshes on a connection of its own, plus the
dialect's liveness lock where one works). Every ``RECOVERY_INTERVAL`` seconds,
and when a drain starts, a worker asks the dialect which workers of running jobs
are dead (``Dialect.dead_workers``: of two rescuers, one wins each) and records
their attempts as lost (``attempts.fail(lost=True)``): due again at once, the
lost attempt counted.
"""

from __future__ import annotations

import collections
import logging
import time

from django.db import models

from .attempts import fail
from .models import Job
from .models import Worker as WorkerRow
from .sql import dialect
from .states import Result

logger = logging.getLogger("async_queue.worker")


def recover(using: str, worker: str, *, running_now: bool) -> int:
    """Requeue (or fail) the running jobs of dead workers; returns how many.

    Between jobs (not ``running_now``), a job still running under ``worker``'s own
    id is one whose failure could not be recorded (its connection was lost, then
    the database was unreachable for a moment): it is recovered too, or it would
    stay running for as long as this worker lives.
    """
    running = Job.objects.using(using).running()
    if running_now:
        running = running.exclude(worker=worker)
    workers = set(running.order_by().values_list("worker", flat=True).distinct())
    if not workers:
        return 0
    dead = dialect(using).dead_workers(workers - {worker})
    if worker in workers:
        dead.add(worker)
    recovered: collections.Counter[str] = collections.Counter()
    for job in running.filter(worker__in=dead):
        if job.worker == worker:
            lost = RuntimeError(
                f"Worker {job.worker} lost its database connection while running this job."
            )
        else:
            lost = RuntimeError(f"Worker {job.worker} was lost while running this job.")
        outcome = fail(job, lost, time.monotonic(), job.worker, lost=True)
        if outcome.status != Result.FENCED:
            recovered[job.worker] += 1
            logger.warning("Job %s: %s", job.pk, lost)
    for name, count in recovered.items():
        WorkerRow.objects.using(using).filter(name=name).update(
            recovered=models.F("recovered") + count
        )
    return sum(recovered.values())
