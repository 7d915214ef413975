"""``schedule()`` and ``deschedule()``: validate in the caller, write on commit.

Everything a worker would trip over later (an unimportable function, arguments
that are not JSON, an oversized payload, a naive datetime) is refused here with
a ``ScheduleError``, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import models, router, transaction
from django.db.models.functions import Now
from django.utils import timezone

from . import payloads
from .callables import backoff_reference, declaration, dotted_name
from .conf import queue_settings
from .exceptions import ScheduleError
from .locks import LockTarget, lock_keys
from .models import Job, JobGroup, JobLock
from .policy import BackoffFunction, ExceptionTypes, Rules
from .retries import Exponential
from .signals import send_event
from .sql import database_now
from .states import Event
from .unique import Window, checked_unique_for, insert_unique, key_order, unique_window

INT32 = (-(2**31), 2**31 - 1)
logger = logging.getLogger("async_queue.scheduling")

NO_TRACKER = "-"  # Job.tracker of a job scheduled with tracker=False


def _why_not_json(label: str, value: Any) -> str:
    """A message naming the first element of ``value`` that cannot be encoded."""
    items: list[tuple[str, Any]]
    if isinstance(value, dict):
        items = [(f"{label}[{key!r}]", item) for key, item in value.items()]
    elif isinstance(value, list | tuple):
        items = [(f"{label}[{index}]", item) for index, item in enumerate(value)]
    else:
        items = []
    for item_label, item in items:
        try:
            payloads.dumps(item)
        except RecursionError:
            return f"{item_label} is nested too deeply to store as JSON."
        except (TypeError, ValueError) as exc:
            if isinstance(item, dict | list | tuple):
                return _why_not_json(item_label, item)
            hint = ""
            if isinstance(item, models.Model):
                hint = " Pass its primary key and load the object inside the job."
            elif isinstance(item, set | frozenset):
                hint = " Pass a list instead."
            elif isinstance(item, bytes | bytearray):
                hint = " Pass text (e.g. base64) instead."
            return f"{item_label} cannot be stored as JSON ({exc}).{hint}"
    return f"{label} cannot be stored as JSON."


def encode_payload(
    args: Sequence[Any] | None, kwargs: dict[str, Any] | None, meta: dict[str, Any] | None = None
) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Validate and normalise a job's JSON payload: what the worker will receive."""
    args = [] if args is None else args
    kwargs = {} if kwargs is None else kwargs
    meta = {} if meta is None else meta
    if not isinstance(args, list | tuple):
        raise ScheduleError(f"args must be a list or tuple, not {type(args).__name__}.")
    if not isinstance(kwargs, dict):
        raise ScheduleError(f"kwargs must be a dict, not {type(kwargs).__name__}.")
    if bad := [key for key in kwargs if not isinstance(key, str)]:
        raise ScheduleError(f"kwargs keys must be strings; got {bad[0]!r}.")
    if not isinstance(meta, dict):
        raise ScheduleError(f"meta must be a dict, not {type(meta).__name__}.")
    payload = {"args": list(args), "kwargs": kwargs, "meta": meta}
    try:
        text = payloads.dumps(payload)
    except RecursionError:
        raise ScheduleError("The job's arguments are nested too deeply to store as JSON.") from None
    except (TypeError, ValueError):
        for label in ("args", "kwargs", "meta"):
            try:
                payloads.dumps(payload[label])
            except (RecursionError, TypeError, ValueError):
                raise ScheduleError(_why_not_json(label, payload[label])) from None
        raise
    limit = queue_settings.MAX_PAYLOAD_BYTES
    size = len(text.encode())
    if size > limit:
        raise ScheduleError(
            f"The job's arguments are {size} bytes of JSON, over the {limit}-byte limit "
            "(ASYNC_QUEUE['MAX_PAYLOAD_BYTES']). Store large data in your own table and "
            "pass its key."
        )
    decoded = json.loads(text)
    for label in ("args", "kwargs", "meta"):
        payloads.check(label, decoded[label])
    return decoded["args"], decoded["kwargs"], decoded["meta"]


def _run_after(value: datetime | timedelta | None) -> Any:
    if value is None:
        return Now()
    if isinstance(value, timedelta):
        return models.ExpressionWrapper(Now() + value, output_field=models.DateTimeField())
    if isinstance(value, datetime):
        if settings.USE_TZ and timezone.is_naive(value):
            raise ScheduleError(
                f"run_after={value!r} is a naive datetime; pass an aware one "
                "(django.utils.timezone.now() + ...) or a timedelta."
            )
        return value
    raise ScheduleError(
        f"run_after must be an aware datetime or a timedelta, not {type(value).__name__}."
    )


def _user_id(user: Any) -> Any:
    if user is None or getattr(user, "is_anonymous", False):
        return None
    if isinstance(user, models.Model):
        if user.pk is None:
            raise ScheduleError("user has not been saved; it has no primary key.")
        return user.pk
    raise ScheduleError(f"user must be a user instance or None, not {type(user).__name__}.")


def tracker_name(value: str | bool | None) -> str:
    """What ``Job.tracker`` stores for ``schedule(tracker=value)``; ``ValueError`` if unusable."""
    if value is None or value is True:
        return ""
    if value is False:
        return NO_TRACKER
    trackers = queue_settings.TRACKERS
    if not isinstance(value, str) or not isinstance(trackers, Mapping) or value not in trackers:
        known = ", ".join(map(repr, trackers)) if isinstance(trackers, Mapping) else ""
        raise ValueError(
            f"tracker={value!r} is not a key of ASYNC_QUEUE['TRACKERS'] "
            f"({known or 'none configured'}); name one, or pass False for none."
        )
    return value


def _tracker(value: str | bool | None) -> str:
    try:
        return tracker_name(value)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None


def _checked_int(label: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ScheduleError(f"{label} must be an integer from {low} to {high}; got {value!r}.")
    return value


def build_job(
    function: Callable[..., Any] | str,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    *,
    run_after: datetime | timedelta | None = None,
    priority: int | None = None,
    queue: str | None = None,
    meta: dict[str, Any] | None = None,
    user: Any = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    retry_on: ExceptionTypes = None,
    discard_on: ExceptionTypes = None,
    backoff: Exponential | BackoffFunction | None = None,
    group: JobGroup | None = None,
    locks: Iterable[LockTarget] | None = None,
    unique: bool = False,
    unique_key: str | None = None,
    unique_for: timedelta | None = None,
    tracker: str | bool | None = None,
) -> Job:
    """A validated, unsaved Job (its lock keys in ``job.lock_keys``); ``ScheduleError`` if bad.

    Options left as None take the function's ``@job(...)`` defaults, then the settings'.
    With ``unique_for`` the key (``unique_key``, else one made of the name and the
    arguments) goes to ``unique_window(job)``, not to ``job.unique_key``: the window
    alone decides whether the job is written.
    """
    name, declared = declaration(function)
    flow: dict[str, Any] = {}
    if declared is not None:
        queue = declared.queue if queue is None else queue
        priority = declared.priority if priority is None else priority
        max_attempts = declared.max_attempts if max_attempts is None else max_attempts
        timeout = declared.timeout if timeout is None else timeout
    priority = 0 if priority is None else priority
    args, kwargs, meta = encode_payload(args, kwargs, meta)
    if declared is not None:  # keys from the arguments the job will receive
        flow = declared.limits.row_values(name, args, kwargs, ScheduleError)
    queue = queue_settings.DEFAULT_QUEUE if queue is None else queue
    if not isinstance(queue, str) or not queue or len(queue) > 100:
        raise ScheduleError(
            f"queue must be a non-empty name of up to 100 characters; got {queue!r}."
        )
    if max_attempts is None:
        max_attempts = queue_settings.MAX_ATTEMPTS
    if timeout is not None and (
        not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0
    ):
        raise ScheduleError(f"timeout must be a positive number of seconds; got {timeout!r}.")
    policy = Rules.given(
        retry_on, discard_on, backoff_reference(backoff), error=ScheduleError
    ).as_data()
    if group is not None and (not isinstance(group, JobGroup) or group.pk is None):
        raise ScheduleError(f"group must be a saved JobGroup; got {group!r}.")
    keys = lock_keys(locks) if locks is not None else []
    if unique_key is not None:
        if not isinstance(unique_key, str) or not unique_key or len(unique_key) > 255:
            raise ScheduleError(
                "unique_key must be a non-empty string of up to 255 characters; "
                f"got {unique_key!r}."
            )
    elif unique or unique_for is not None:
        digest = hashlib.sha256(payloads.dumps([args, kwargs]).encode()).hexdigest()
        unique_key = f"{name[:180]}:{digest}"
    window = None
    if unique_for is not None and unique_key is not None:
        window = Window(unique_key, checked_unique_for(unique_for))
        unique_key = None
    job = Job(
        name=name,
        args=args,
        kwargs=kwargs,
        meta=meta,
        queue=queue,
        priority=_checked_int("priority", priority, *INT32),
        run_after=_run_after(run_after),
        max_attempts=_checked_int("max_attempts", max_attempts, 1, INT32[1]),
        user_id=_user_id(user),
        timeout=timeout,
        policy=policy,
        **flow,
        group=group,
        has_locks=bool(keys),
        unique_key=unique_key,
        tracker=_tracker(tracker),
    )
    job.lock_keys = keys
    if window is not None:
        window.attach(job)
    # For bulk inserts: how far after the database's "now" the job is due.
    job.run_after_delay = None if isinstance(run_after, datetime) else (run_after or timedelta(0))
    return job


def _insert(jobs: list[Job], using: str) -> None:
    """Write the rows (one INSERT for all of them) and their lock keys, atomically.

    A unique job whose key a queued or running job already has, or a ``unique_for``
    job whose key's window is open, is not written: it takes that job's values
    instead (``job.deduplicated`` is then True).
    """
    unique = [job for job in jobs if job.unique_key is not None or unique_window(job)]
    jobs = [job for job in jobs if job.unique_key is None and not unique_window(job)]
    if not unique and len(jobs) == 1 and not jobs[0].lock_keys:
        # One INSERT is atomic by itself: no savepoint around it.
        jobs[0].save(using=using, force_insert=True)
        send_event(Event.SCHEDULED, jobs[0], locks=[])
        return
    with transaction.atomic(using=using):
        # Inside the transaction: a window opened here closes again if anything
        # after it fails, so a schedule that wrote nothing never consumes one.
        # In one order of keys, so that two schedule_many() calls whose keys
        # overlap wait for each other instead of deadlocking.
        written = [job for job in sorted(unique, key=key_order) if insert_unique(job, using)]
        if not jobs:
            pass
        elif len(jobs) == 1:
            jobs[0].save(using=using, force_insert=True)
        else:
            # One reading of the database clock instead of a Now() expression in
            # every row: plain values let Django use its fastest bulk INSERT.
            now = database_now(using)
            for job in jobs:
                if job.run_after_delay is not None:
                    job.run_after = now + job.run_after_delay
            Job.objects.using(using).bulk_create(jobs)
        jobs += written
        locks = [JobLock(job_id=job.pk, key=key) for job in jobs for key in job.lock_keys]
        if locks:
            JobLock.objects.using(using).bulk_create(locks)
    for job in jobs:
        send_event(Event.SCHEDULED, job, locks=job.lock_keys)


def _insert_after_commit(jobs: list[Job], using: str) -> None:
    """The ``on_commit`` hook: write the rows, and never raise.

    The caller's transaction has committed: an exception here would only stop
    Django from running the transaction's later hooks (other jobs among them).
    If the write of all rows fails (the database went away, say), each row is
    tried on its own, so that one row cannot take the others with it, and every
    row that still cannot be written is logged at ERROR with its name.
    """
    try:
        _insert(jobs, using)
        return
    except Exception as exc:
        if len(jobs) == 1:
            _log_lost(jobs[0], exc)
            return
    for job in jobs:
        try:
            _insert([job], using)
        except Exception as exc:
            _log_lost(job, exc)


def _log_lost(job: Job, exc: BaseException) -> None:
    job.pk = None  # its row does not exist
    job._state.adding = True
    logger.error(
        "Could not write job %s after its transaction committed; it will not run: %s",
        job.name,
        exc,
        exc_info=exc,
    )


def _write(jobs: list[Job], using: str | None, on_commit: bool) -> None:
    alias = using or router.db_for_write(Job)
    if on_commit and transaction.get_connection(alias).in_atomic_block:
        transaction.on_commit(partial(_insert_after_commit, jobs, alias), using=alias)
    else:
        # No transaction to wait for (or on_commit=False): write now, and let an
        # error reach the caller.
        _insert(jobs, alias)


def schedule(
    function: Callable[..., Any] | str,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    *,
    run_after: datetime | timedelta | None = None,
    priority: int | None = None,
    queue: str | None = None,
    meta: dict[str, Any] | None = None,
    user: Any = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    retry_on: ExceptionTypes = None,
    discard_on: ExceptionTypes = None,
    backoff: Exponential | BackoffFunction | None = None,
    group: JobGroup | None = None,
    locks: Iterable[LockTarget] | None = None,
    unique: bool = False,
    unique_key: str | None = None,
    unique_for: timedelta | None = None,
    tracker: str | bool | None = None,
    using: str | None = None,
    on_commit: bool = True,
) -> Job:
    """Queue ``function(*args, **kwargs)`` to run in a worker; returns the Job.

    Inside a transaction the row is written when that transaction commits (and
    never, if it rolls back); the returned Job gets its pk then. ``on_commit=False``
    writes the row at once, inside the caller's transaction. ``locks`` declares
    the objects the job touches (see ``async_queue.locks``). ``unique=True`` (a key
    from the name and arguments) or ``unique_key=`` adds no second queued or running
    job with the same key: the returned Job is then the existing one. ``unique_for=``
    (a timedelta) instead adds no second job with the key for that long after the
    job that opened the window was written, whatever has become of it since; it
    replaces the queued-or-running rule for that job. ``retry_on``, ``discard_on``
    and ``backoff`` override the function's declared failure policy
    (``async_queue.policy``). ``tracker`` names a key of ``ASYNC_QUEUE["TRACKERS"]``
    that mirrors this job (``False``: none; default: the ``TRACKER`` setting).
    """
    job = build_job(
        function,
        args,
        kwargs,
        run_after=run_after,
        priority=priority,
        queue=queue,
        meta=meta,
        user=user,
        max_attempts=max_attempts,
        timeout=timeout,
        retry_on=retry_on,
        discard_on=discard_on,
        backoff=backoff,
        group=group,
        locks=locks,
        unique=unique,
        unique_key=unique_key,
        unique_for=unique_for,
        tracker=tracker,
    )
    _write([job], using, on_commit)
    return job


Call = tuple[Callable[..., Any] | str, Sequence[Any] | None, Mapping[str, Any] | None]


def schedule_many(
    calls: Iterable[Call | Mapping[str, Any]],
    *,
    using: str | None = None,
    on_commit: bool = True,
    **options: Any,
) -> list[Job]:
    """Queue many jobs with one bulk INSERT, written in one on_commit hook.

    Each call is a ``(function, args, kwargs)`` tuple or a dict of ``schedule()``
    arguments (``{"function": ..., "args": ..., "priority": ...}``); ``options``
    are defaults for every call (``unique_for=`` among them: each call then opens or
    meets its own key's window, a later call meeting an earlier one's). All are
    validated before anything is written.
    """
    jobs = []
    for index, call in enumerate(calls):
        if isinstance(call, Mapping):
            arguments = {**options, **call}
        elif isinstance(call, tuple | list) and 1 <= len(call) <= 3:
            arguments = {**options, **dict(zip(("function", "args", "kwargs"), call, strict=False))}
        else:
            raise ScheduleError(
                f"calls[{index}] must be a (function, args, kwargs) tuple or a dict; got {call!r}."
            )
        if "function" not in arguments:
            raise ScheduleError(f"calls[{index}] names no function.")
        try:
            jobs.append(build_job(**arguments))
        except ScheduleError as exc:
            raise ScheduleError(f"calls[{index}]: {exc}") from exc
        except TypeError as exc:
            raise ScheduleError(f"calls[{index}]: {exc}") from None
    if jobs:
        _write(jobs, using, on_commit)
    return jobs


def deschedule(
    function: Callable[..., Any] | str,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    *,
    using: str | None = None,
) -> int:
    """Cancel the queued jobs that would call ``function(*args, **kwargs)``; returns how many."""
    name = function if isinstance(function, str) else dotted_name(function)
    args, kwargs, _ = encode_payload(args, kwargs)
    alias = using or router.db_for_write(Job)
    return Job.objects.using(alias).filter(name=name, args=args, kwargs=kwargs).cancel()


async def aschedule(
    function: Callable[..., Any] | str,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> Job:
    """``schedule()`` for async code, with the same commit semantics.

    It runs ``schedule()`` through ``sync_to_async(thread_sensitive=True)``: in the
    thread where Django runs sync code, on that thread's connection. If that
    connection is inside ``transaction.atomic()`` (async code called from a sync
    block that opened one), the row is written when that transaction commits;
    from an async view, which cannot hold a transaction open, it is written at once.
    """
    return await sync_to_async(schedule, thread_sensitive=True)(function, args, kwargs, **options)
