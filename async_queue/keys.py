"""Lock keys: the stable names (and 64-bit advisory ids) of what a job touches.

Keys are ``"app_label.model:pk"`` (or any string). Advisory lock ids are a stable
64-bit hash of the key (blake2b, the same in every process; Python's ``hash()``
is salted per process). ``lock_plan()`` turns keys into the ids to take: a set of
more than ``LOCK_ESCALATION`` objects of one model takes one exclusive model-wide
lock instead of one lock per object, and a smaller set takes that model-wide lock
in shared mode next to its object locks, so a job over 100,000 rows uses one slot
of PostgreSQL's lock table, not 100,000, and still conflicts with every edit of
that model. Pure functions: no database, no models.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db import models

from .conf import queue_settings
from .exceptions import ScheduleError

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
