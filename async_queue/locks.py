"""Object locks: what a job touches, shared with any code that must not touch it meanwhile.

A job declares what it touches (``schedule(..., locks=[book, (Author, 3), "feed"])``).
The keys are stored with it (``JobLock`` rows) so anyone can ask what is busy
(``busy()``), and while it runs the worker holds a transaction-level advisory lock
per key on PostgreSQL. Web edits and other synchronous code take the same locks
with ``hold()``; a held lock makes them raise ``Conflict`` instead of waiting.

Keys are ``"app_label.model:pk"`` (or any string). Advisory lock ids are a stable
64-bit hash of the key (blake2b, the same in every process; Python's ``hash()``
is salted per process). A set of more than ``LOCK_ESCALATION`` objects of one
model takes one exclusive model-wide lock instead of one lock per object, and a
smaller set takes that model-wide lock in shared mode next to its object locks,
so a job over 100,000 rows uses one slot of PostgreSQL's lock table, not 100,000,
and still conflicts with every edit of that model.

On SQLite there are no advisory locks, but a job's transaction holds the
database's single write lock from its first statement (``BEGIN IMMEDIATE``), so a
job can never overlap another job or a ``hold()`` block; ``hold()`` there checks
the declared locks of running (and queued) jobs, with the same ``Conflict``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import OperationalError, connections, models, router
from django.db.transaction import TransactionManagementError

from .conf import queue_settings
from .exceptions import Conflict, ScheduleError

LockTarget = Any  # a model instance, a queryset, a (model, pk) pair or a string
KEY_MAX_CHARS = 255


def _model_label(model: type[models.Model] | str) -> str:
    if isinstance(model, str):
        if "." not in model:
            raise ScheduleError(f"{model!r} is not a model label like 'app_label.model'.")
        return model.lower()
    return model._meta.label_lower


def lock_key(target: LockTarget) -> str:
    """The key of a model instance, a ``(model, pk)`` pair, or a plain string."""
    if isinstance(target, models.Model):
        if target.pk is None:
            raise ScheduleError(f"{target!r} has no primary key; save it before locking it.")
        key = f"{target._meta.label_lower}:{target.pk}"
    elif isinstance(target, tuple) and len(target) == 2:
        model, pk = target
        if pk is None:
            raise ScheduleError(f"Lock {target!r} has no primary key.")
        if isinstance(model, type) and issubclass(model, models.Model):
            pk = model._meta.pk.to_python(pk)
        key = f"{_model_label(model)}:{pk}"
    elif isinstance(target, str):
        if not target:
            raise ScheduleError("A lock key cannot be empty.")
        key = target
    else:
        raise ScheduleError(
            f"Cannot lock {target!r}: pass model instances, querysets, (model, pk) pairs "
            "or strings."
        )
    if len(key) > KEY_MAX_CHARS:
        raise ScheduleError(f"Lock key {key[:40]!r}... is over {KEY_MAX_CHARS} characters.")
    return key


def lock_keys(targets: Iterable[LockTarget]) -> list[str]:
    """Sorted, unique keys of ``targets``; querysets are expanded to their pks now.

    ``targets`` is an iterable of targets (a ``(model, pk)`` pair goes inside it);
    a lone string, instance or queryset is taken as one target.
    """
    if isinstance(targets, str | models.Model | models.QuerySet):
        targets = [targets]
    keys: set[str] = set()
    for target in targets:
        if isinstance(target, models.QuerySet):
            label = target.model._meta.label_lower
            keys.update(f"{label}:{pk}" for pk in target.values_list("pk", flat=True))
        else:
            keys.add(lock_key(target))
    limit = queue_settings.MAX_LOCKS
    if len(keys) > limit:
        raise ScheduleError(
            f"{len(keys)} lock keys are over the limit of {limit} (ASYNC_QUEUE['MAX_LOCKS']). "
            "Lock a parent object or a string key that stands for the set instead."
        )
    return sorted(keys)


def lock_id(key: str) -> int:
    """The signed 64-bit advisory lock id of ``key``: stable across processes and machines."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"async_queue").digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_plan(keys: Iterable[str]) -> list[tuple[int, bool]]:
    """``(lock id, exclusive)`` pairs to take for ``keys``, in ascending id order."""
    by_model: dict[str, list[str]] = defaultdict(list)
    plain: list[str] = []
    for key in keys:
        label, sep, _ = key.partition(":")
        if sep and "." in label:
            by_model[label].append(key)
        else:
            plain.append(key)
    plan = {lock_id(key): True for key in plain}
    threshold = queue_settings.LOCK_ESCALATION
    for label, model_keys in by_model.items():
        model_id = lock_id(f"{label}:*")
        if len(model_keys) > threshold:
            plan[model_id] = True
        else:
            plan.setdefault(model_id, False)
            plan.update((lock_id(key), True) for key in model_keys)
    return sorted(plan.items())


def busy(*targets: LockTarget, using: str | None = None) -> models.QuerySet:
    """Queued or running jobs that declared any of ``targets``."""
    from .models import Job

    keys = lock_keys(list(targets))
    alias = using or router.db_for_read(Job)
    return (
        Job.objects.using(alias)
        .filter(status__in=["queued", "running"], locks__key__in=keys)
        .distinct()
        .order_by("id")
    )


def holders(
    keys: Iterable[str], jobs: Iterable[int], using: str | None = None
) -> dict[str, list[int]]:
    """Which of ``jobs`` (ids) declared each of ``keys``: key -> job ids, in id order.

    Keys no job of ``jobs`` declared are left out. One query per thousand keys.
    """
    from .models import JobLock

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
    from . import db
    from .models import Job

    alias = using or router.db_for_write(Job)
    connection = connections[alias]
    if not connection.in_atomic_block:
        raise TransactionManagementError(
            "locks.hold() must run inside transaction.atomic(): the locks last until the "
            "transaction ends."
        )
    keys = lock_keys(list(targets))
    if connection.vendor == "sqlite":
        _take_write_lock(keys, alias)
    elif not db.take_locks(alias, lock_plan(keys), wait=wait):
        blockers = list(busy(*keys, using=alias).filter(status="running"))
        raise Conflict(keys, blockers)
    _refuse_if_running(keys, alias)
    if not ignore_queued:
        queued = list(busy(*keys, using=alias).filter(status="queued"))
        if queued:
            raise Conflict(keys, queued)
    yield keys


def _take_write_lock(keys: list[str], alias: str) -> None:
    """SQLite: the database's single write lock, or ``Conflict`` if a running job has the keys.

    Another writer (often a running job) may hold the lock. Then a running job that
    declared ``keys`` is a ``Conflict`` at once; any other writer is waited for, up to
    the busy timeout, like by every writer. The check runs without a read in this
    transaction: after one, SQLite refuses the wait with "database is locked".

    A wait that outlasts the busy timeout raises that ``OperationalError`` as it is,
    not ``Conflict``: nothing holds these objects, the whole database is busy (for
    ``DatabaseBusyMiddleware``, a 503 "try again").
    """
    from . import db

    if db.take_write_lock(alias, wait=False):
        return
    if db.declared_by_running_job(alias, keys):
        _refuse_if_running(keys, alias)
    try:
        db.take_write_lock(alias)
    except OperationalError:
        _refuse_if_running(keys, alias)
        raise


def _refuse_if_running(keys: list[str], alias: str) -> None:
    running = list(busy(*keys, using=alias).filter(status="running"))
    if running:
        raise Conflict(keys, running)


__all__ = ["Conflict", "busy", "hold", "holders", "lock_id", "lock_key", "lock_keys", "lock_plan"]
