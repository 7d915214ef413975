"""Pause and resume a queue or a job name at runtime.

A pause is a ``Pause`` row: every worker's claim skips the due jobs of paused
queues and names from the statement after the pause commits, on every machine,
and across worker restarts. Running jobs finish; jobs keep being scheduled and
wait, queued. Resuming deletes the row: on PostgreSQL the deletion notifies the
idle workers (a trigger, as a new job does), on SQLite they find the jobs at
their next poll (``POLL_INTERVAL``).

``Job.execute()`` runs the one job it is given even if it is paused: it is an
explicit request for that job, not a worker looking for work.

Every function is idempotent: pausing a paused queue changes nothing (the first
pause's time, user and reason stay) and returns False; so does resuming one
that is not paused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, models, router, transaction

from .callables import dotted_name
from .exceptions import ScheduleError
from .models import Job, Pause, PauseKind

QUEUE_MAX_LENGTH = Job._meta.get_field("queue").max_length or 100
REASON_MAX_LENGTH = Pause._meta.get_field("reason").max_length or 255

JobName = Callable[..., Any] | str


def queue_name(queue: str) -> str:
    """``queue``, checked: a non-empty name no longer than ``Job.queue`` stores."""
    if not isinstance(queue, str) or not queue.strip():
        raise ValueError(f"{queue!r} is not a queue name; pass one such as 'emails'.")
    if len(queue) > QUEUE_MAX_LENGTH:
        raise ValueError(
            f"Queue name {queue[:20]!r}... is {len(queue)} characters long; queue names are "
            f"at most {QUEUE_MAX_LENGTH}."
        )
    return queue


def job_name(function: JobName) -> str:
    """The dotted name of a declared job (a function, a ``Task`` or its dotted name).

    Raises ``JobNotAllowed`` for an undeclared one and ``ScheduleError`` for a name
    that cannot be imported: pausing a name no job can have would pause nothing.
    """
    try:
        return dotted_name(function)
    except ScheduleError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, ImportError) else exc
        label = function if isinstance(function, str) else getattr(function, "__qualname__", "")
        raise type(exc)(
            f"Cannot pause {label or function!r}: {cause} Pause a declared job by its dotted name, "
            "such as 'myapp.tasks.send_mail', or pause its whole queue."
        ) from exc


def _stored_name(function: JobName) -> str:
    # Resuming accepts any stored name, also of a job that is no longer declared.
    return function if isinstance(function, str) else job_name(function)


def _reason(reason: str) -> str:
    if not isinstance(reason, str):
        raise ValueError(f"The reason must be text, not {type(reason).__name__}.")
    if len(reason) > REASON_MAX_LENGTH:
        raise ValueError(
            f"The reason is {len(reason)} characters long; shorten it to at most "
            f"{REASON_MAX_LENGTH}."
        )
    return reason


def _alias(using: str | None) -> str:
    # The jobs' database (the claim reads both tables in one statement), unless named.
    return using or router.db_for_write(Job)


def _user_id(user: Any) -> Any:
    if user is None or getattr(user, "is_anonymous", False):
        return None
    if isinstance(user, models.Model) and user.pk is not None:
        return user.pk
    raise ValueError(f"user must be a saved user instance or None, not {user!r}.")


def _pause(
    kind: PauseKind,
    value: str,
    reason: str,
    user: Any,
    using: str | None,
) -> bool:
    reason = _reason(reason)
    by = _user_id(user)
    using = _alias(using)
    pauses = Pause.objects.using(using)
    if pauses.filter(kind=kind, value=value).exists():
        return False
    try:
        with transaction.atomic(using=using):
            pauses.create(kind=kind, value=value, reason=reason, paused_by_id=by)
    except IntegrityError:  # paused concurrently: the unique (kind, value) decided
        if pauses.filter(kind=kind, value=value).exists():
            return False
        raise
    return True


def _resume(kind: PauseKind, value: str, using: str | None) -> bool:
    deleted, _ = Pause.objects.using(_alias(using)).filter(kind=kind, value=value).delete()
    return bool(deleted)


def pause_queue(
    queue: str,
    *,
    reason: str = "",
    user: Any = None,
    using: str | None = None,
) -> bool:
    """Stop workers claiming jobs of ``queue``; True if it was not paused already.

    ``user`` (who paused it) and ``reason`` are shown on the dashboard and in the admin.
    """
    return _pause(PauseKind.QUEUE, queue_name(queue), reason, user, using)


def resume_queue(queue: str, *, using: str | None = None) -> bool:
    """Let workers claim jobs of ``queue`` again; True if it was paused."""
    return _resume(PauseKind.QUEUE, queue_name(queue), using)


def pause_job(
    function: JobName,
    *,
    reason: str = "",
    user: Any = None,
    using: str | None = None,
) -> bool:
    """Stop workers claiming jobs of this declared function (in any queue); True if it was
    not paused already. ``function`` is the function, its ``Task`` or its dotted name."""
    return _pause(PauseKind.NAME, job_name(function), reason, user, using)


def resume_job(function: JobName, *, using: str | None = None) -> bool:
    """Let workers claim jobs of this function again; True if it was paused.

    A dotted name is taken as stored, so a name that is no longer declared can be
    resumed too.
    """
    return _resume(PauseKind.NAME, _stored_name(function), using)


def paused(using: str | None = None) -> list[Pause]:
    """The pauses in force: queues first, then job names, each by name."""
    return list(Pause.objects.using(using or router.db_for_read(Job)).select_related("paused_by"))
