"""Lifecycle signals: what downstream projects wire their own dashboards to.

Every signal is sent with ``sender=Job``, ``job`` (the Job instance) and
``payload`` (a dict: ``event``, ``status``, ``message``, ``progress`` as
``{"current", "total", "message"}``, ``result`` or ``error``, ``attempt``,
``timestamp``, and for ``scheduled`` the declared ``locks``). Per attempt they
fire in this order, each once:

    scheduled (once per job, when its row is written)
    started -> progress* -> succeeded | retrying | failed | cancelled -> cleanup

``cleanup`` is sent after the job's transaction ended and its locks were
released. ``cancelled`` is also sent when a queued job is cancelled. Receivers
must not raise: a failing receiver is logged and never breaks or retries a job.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal
from django.utils import timezone

from .states import Event

if TYPE_CHECKING:
    from .models import Job

logger = logging.getLogger("async_queue.events")

job_scheduled = Signal()
job_started = Signal()
job_progress = Signal()
job_retrying = Signal()
job_succeeded = Signal()
job_failed = Signal()
job_cancelled = Signal()
job_cleanup = Signal()

SIGNALS: dict[str, Signal] = {
    Event.SCHEDULED: job_scheduled,
    Event.STARTED: job_started,
    Event.PROGRESS: job_progress,
    Event.RETRYING: job_retrying,
    Event.SUCCEEDED: job_succeeded,
    Event.FAILED: job_failed,
    Event.CANCELLED: job_cancelled,
    Event.CLEANUP: job_cleanup,
}


def send_event(event: str, job: Job, **payload: Any) -> None:
    """Send lifecycle signal ``event`` for ``job``; receivers' errors are logged, not raised."""
    signal = SIGNALS[event]
    if not signal.has_listeners():
        return
    payload = {
        "event": event,
        "status": job.status,
        "attempt": job.attempts,
        "timestamp": timezone.now(),
        **payload,
    }
    for receiver, response in signal.send_robust(sender=type(job), job=job, payload=payload):
        if isinstance(response, Exception):
            logger.error(
                "A receiver of the %s event of job %s failed: %r",
                event,
                job.pk,
                response,
                exc_info=response,
                extra={"receiver": receiver},
            )


def log_event(sender: Any, job: Job, payload: dict[str, Any], **kwargs: Any) -> None:
    """One structured log line per lifecycle event, on the ``async_queue.events`` logger.

    Level INFO (``progress``: DEBUG; ``failed``: WARNING). The record's ``extra``
    fields: ``event``, ``job_id``, ``job_name``, ``queue``, ``status``, ``attempt``,
    and when the event has them ``error``, ``retry_in``, ``progress``.
    """
    event = payload["event"]
    level = {Event.PROGRESS: logging.DEBUG, Event.FAILED: logging.WARNING}.get(event, logging.INFO)
    if not logger.isEnabledFor(level):
        return
    fields = {
        "event": event,
        "job_id": job.pk,
        "job_name": job.name,
        "queue": job.queue,
        "status": payload["status"],
        "attempt": payload["attempt"],
    }
    fields.update(
        {key: payload[key] for key in ("error", "retry_in", "progress") if key in payload}
    )
    logger.log(level, "job %s %s %s", job.pk, job.name, event, extra=fields)


for _signal in SIGNALS.values():
    _signal.connect(log_event, dispatch_uid="async_queue.signals.log_event")
