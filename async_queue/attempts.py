"""One attempt: its time limit, and what it produced: a result fit to store, or a failure.

``fail()`` is the one place a failed attempt is decided (retry with backoff,
retry at once, or fail for good) and recorded (``Job.fail_attempt``: the row and
a ``JobError`` in one transaction), for the worker and for crash recovery.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections

from . import payloads
from .callables import job_rules
from .conf import queue_settings
from .exceptions import JobTimeout, ResultTooLarge, UnreadableArguments
from .fields import UnreadableJSON
from .models import Job
from .policy import Decision, Rules, decide
from .signals import send_event
from .sql import dialect
from .states import Event, Outcome, Result, Status

logger = logging.getLogger("async_queue.worker")

MESSAGE_MAX_CHARS = 2000
SUMMARY_MAX_CHARS = 500


def exception_path(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def format_traceback(exc: BaseException) -> str:
    """The traceback text (no frame locals), at most ``TRACEBACK_MAX_BYTES`` of UTF-8.

    A longer one keeps its head and tail around a note of how much was cut; the
    note counts against the limit, and no character is split.
    """
    text = "".join(traceback.format_exception(exc))
    limit = queue_settings.TRACEBACK_MAX_BYTES
    data = text.encode()
    if len(data) <= limit:
        return text
    note = "\n... [{} bytes cut] ...\n"
    budget = max(limit - len(note.format(len(data))), 0)
    head = budget // 4
    tail = budget - head
    kept_head = data[:head].decode(errors="ignore")
    kept_tail = data[len(data) - tail :].decode(errors="ignore")
    cut = len(data) - len(kept_head.encode()) - len(kept_tail.encode())
    return f"{kept_head}{note.format(cut)}{kept_tail}"


def storable(result: Any) -> Any:
    """``result`` if it can be stored: JSON of at most ``MAX_RESULT_BYTES`` (see ``payloads``)."""
    try:
        # As the field writes it (ASCII, so characters are bytes).
        text = json.dumps(result, cls=DjangoJSONEncoder, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(
            f"The job returned a {type(result).__name__}, which cannot be stored as JSON ({exc})."
        ) from None
    limit = queue_settings.MAX_RESULT_BYTES
    if len(text) > limit:
        raise ResultTooLarge(
            f"The job returned {len(text):,} bytes of JSON, over ASYNC_QUEUE['MAX_RESULT_BYTES'] "
            f"({limit:,}): return less (for example the id of a row or file that holds the "
            "output), or raise the setting."
        )
    # The rules schedule() applies to arguments: a value PostgreSQL refuses would
    # otherwise fail the completion UPDATE instead of naming the problem.
    payloads.check("The job's result", json.loads(text), error=TypeError)
    return result


def unrunnable(job: Job) -> UnreadableArguments | None:
    """Why the row's arguments cannot be passed to its function, if they cannot."""
    for field, value, kind, expected in (
        ("args", job.args, list, "a JSON list"),
        ("kwargs", job.kwargs, dict, "a JSON object"),
    ):
        if isinstance(value, UnreadableJSON):
            problem = f"cannot be read: {value}"
        elif not isinstance(value, kind):
            problem = f"must be {expected}, not {type(value).__name__}"
        else:
            continue
        return UnreadableArguments(
            f"Job {job.pk}'s {field} {problem}. The row was not written by schedule() (forged, "
            "or written by an older version), so nothing was called: schedule the call again."
        )
    return None


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``JobTimeout`` into the job after ``seconds`` (main thread only)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise JobTimeout(f"timed out after {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    # A little after the database's statement_timeout, so that a blocked query
    # is cancelled server-side first and the connection stays usable.
    signal.setitimer(signal.ITIMER_REAL, seconds + 0.2)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def close_broken_connections(force: bool = False) -> None:
    """Close connections that broke (all, with ``force``), never one inside a transaction.

    Unlike close_old_connections(), healthy connections stay whatever CONN_MAX_AGE
    says: reconnecting per job costs more than the job.
    """
    for connection in connections.all(initialized_only=True):
        if connection.in_atomic_block:
            continue
        if force or (connection.errors_occurred and not connection.is_usable()):
            connection.close()


def fail(
    job: Job,
    exc: BaseException,
    started: float,
    worker: str,
    *,
    final: bool = False,
    lost: bool = False,
    aborted: bool = False,
    progress: dict[str, Any] | None = None,
) -> Outcome:
    """Record a failed attempt, then requeue the job (with backoff) or mark it failed.

    ``lost``: the attempt was lost to the infrastructure (its worker or database
    connection), not to the job: due again at once, and retried until the job has
    made ``MAX_LOST_ATTEMPTS`` attempts even past its ``max_attempts`` (counted,
    so a job that keeps killing its worker still ends). ``aborted``: the worker
    is stopping; the job is due again at once, even after its last attempt.
    """
    message = str(exc)[:MESSAGE_MAX_CHARS]
    summary = f"{exception_path(exc)}: {message}"[:SUMMARY_MAX_CHARS]
    duration = time.monotonic() - started
    # The job's own rules apply only to what the job itself raised.
    rules = Rules() if final or lost or aborted else job_rules(job.name, job.policy)
    decision = decide(
        exc,
        rules,
        attempt=job.attempts,
        max_attempts=job.max_attempts,
        snoozes=job.snoozes,
        lost=lost,
        final=final,
        aborted=aborted,
    )
    status, retry_in = decision.status, decision.retry_in
    if status == Result.SNOOZED:
        return _snooze(job, worker, decision, duration, progress or {})
    error = {
        "summary": summary,
        "exception": exception_path(exc)[:255],
        "message": message,
        "traceback": format_traceback(exc),
        "decision": decision.reason[:255],
    }
    using = job._state.db or "default"
    try:
        with dialect(using).job_transaction():
            if not job.fail_attempt(worker, error, retry_in=retry_in, progress=progress or {}):
                status = Result.FENCED
    except DatabaseError:
        # The row stays running; crash recovery requeues it.
        logger.exception("Could not record the failure of job %s.", job.pk)
        close_broken_connections(force=True)
    if status in (Result.FAILED, Result.RETRYING, Result.ABORTED):
        job.status = Status.FAILED if status == Result.FAILED else Status.QUEUED
        job.last_error = summary
        event = Event.FAILED if status == Result.FAILED else Event.RETRYING
        send_event(
            event,
            job,
            error=summary,
            message=message,
            retry_in=retry_in,
            decision=decision.reason,
        )
    if status == Result.FAILED:
        logger.error("Job %s %s failed: %s", job.pk, job.name, summary)
    return Outcome(job.pk, job.name, status, duration, summary, retry_in)


def _snooze(
    job: Job, worker: str, decision: Decision, duration: float, progress: dict[str, Any]
) -> Outcome:
    """The job raised ``Snooze``: queued again later, the attempt not used (no JobError)."""
    seconds = decision.retry_in or 0.0
    with dialect(job._state.db or "default").job_transaction():
        snoozed = job.snooze(worker, seconds, progress)
    if not snoozed:
        return Outcome(job.pk, job.name, Result.FENCED, duration)
    send_event(Event.RETRYING, job, message=decision.reason, retry_in=seconds, snoozed=True)
    return Outcome(job.pk, job.name, Result.SNOOZED, duration, decision.reason, seconds)
