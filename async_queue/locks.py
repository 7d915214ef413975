"""Object locks: what a job touches, shared with any code that must not touch it meanwhile.

A job declares what it touches (``schedule(..., locks=[book, (Author, 3), "feed"])``).
The keys are stored with it (``JobLock`` rows) so anyone can ask what is busy
(``busy()``), and while it runs the worker holds a transaction-level advisory lock
per key on PostgreSQL. Web edits and other synchronous code take the same locks
with ``hold()``; a held lock makes them raise ``Conflict`` instead of waiting.

Keys, their advisory ids and the escalation to model-wide locks are ``keys``'.

On SQLite there are no advisory locks, but a job's transaction holds the
database's single write lock from its first statement (``BEGIN IMMEDIATE``), so a
job can never overlap another job or a ``hold()`` block; ``hold()`` there checks
the declared locks of running (and queued) jobs, with the same ``Conflict``.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator

from django.db import connections, models, router
from django.db.transaction import TransactionManagementError

from .exceptions import Conflict
from .keys import LockTarget, lock_id, lock_key, lock_keys, lock_plan
from .models import Job, JobLock, Status
from .sql import dialect


def busy(*targets: LockTarget, using: str | None = None) -> models.QuerySet:
    """Queued or running jobs that declared any of ``targets``."""
    keys = lock_keys(list(targets))
    alias = using or router.db_for_read(Job)
    return (
        Job.objects.using(alias)
        .filter(status__in=[Status.QUEUED, Status.RUNNING], locks__key__in=keys)
        .distinct()
        .order_by("id")
    )


def holders(
    keys: Iterable[str], jobs: Iterable[int], using: str | None = None
) -> dict[str, list[int]]:
    """Which of ``jobs`` (ids) declared each of ``keys``: key -> job ids, in id order.

    Keys no job of ``jobs`` declared are left out. One query per thousand keys.
    """
    job_ids = list(jobs)
    alias = using or router.db_for_read(JobLock)
    held: dict[str, list[int]] = defaultdict(list)
    keys = list(keys)
    for start in range(0, len(keys), 1000):
        rows = JobLock.objects.using(alias).filter(
            key__in=keys[start : start + 1000], job_id__in=job_ids
        )
        for key, job_id in rows.order_by("job_id").values_list("key", "job_id"):
            held[key].append(job_id)
    return dict(held)


@contextlib.contextmanager
def hold(
    *targets: LockTarget,
    wait: bool | float = False,
    ignore_queued: bool = False,
    using: str | None = None,
) -> Iterator[list[str]]:
    """Lock ``targets`` for the rest of the current transaction, or raise ``Conflict``.

    Use it around a write of objects a job may touch (a web edit, a ``save()`` that
    updates descendants), inside ``transaction.atomic()``: the locks last until that
    transaction ends. Raises ``Conflict`` (carrying the blocking jobs) when a running
    job holds one of them, or when a queued job has declared one (unless
    ``ignore_queued``). ``wait`` (True or seconds) waits for locks held by others
    instead of failing at once.
    """
    alias = using or router.db_for_write(Job)
    if not connections[alias].in_atomic_block:
        raise TransactionManagementError(
            "locks.hold() must run inside transaction.atomic(): the locks last until the "
            "transaction ends."
        )
    keys = lock_keys(list(targets))

    def refuse_if_running() -> None:
        _refuse_if_running(keys, alias)

    sql = dialect(alias)
    if not sql.hold(keys, lock_plan(keys), wait=wait, refuse_if_running=refuse_if_running):
        raise Conflict(keys, _running(keys, alias))  # or another request's hold()
    _refuse_if_running(keys, alias)
    if not ignore_queued:
        queued = list(busy(*keys, using=alias).filter(status=Status.QUEUED))
        if queued:
            raise Conflict(keys, queued)
    yield keys


def _running(keys: list[str], alias: str) -> list[Job]:
    return list(busy(*keys, using=alias).filter(status=Status.RUNNING))


def _refuse_if_running(keys: list[str], alias: str) -> None:
    """``Conflict`` if a running job declared any of ``keys`` (its row says so)."""
    if running := _running(keys, alias):
        raise Conflict(keys, running)


def take_job_locks(job: Job, using: str) -> bool:
    """Take the object locks ``job`` declared, inside its transaction; False if busy.

    Where the job's transaction excludes every other writer (SQLite's ``BEGIN
    IMMEDIATE``) the dialect takes nothing.
    """
    sql = dialect(using)
    if not job.has_locks or not sql.object_locks:
        return True
    keys = JobLock.objects.using(using).filter(job_id=job.pk).values_list("key", flat=True)
    return sql.take_locks(lock_plan(keys))


__all__ = [
    "Conflict",
    "LockTarget",
    "busy",
    "hold",
    "holders",
    "lock_id",
    "lock_key",
    "lock_keys",
    "lock_plan",
    "take_job_locks",
]
