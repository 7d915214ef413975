"""Which tracker a job has, and the receiver that hands it every lifecycle event."""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils.module_loading import import_string

from ...conf import queue_settings
from ...signals import SIGNALS

if TYPE_CHECKING:
    from ...models import Job

from ...scheduling import NO_TRACKER
from .tracker import DEFAULT_CLASS, Tracker, TrackerConfigError

logger = logging.getLogger("async_queue.tracking")

# -- configuration and the receivers ------------------------------------------------------

_cache: list[tuple[dict[str, Any], Tracker]] | None = None
CACHE_SIZE = 8  # configurations kept: the setting and a few per-job ones


def get_tracker(config: Mapping[str, Any] | None = None) -> Tracker | None:
    """The Tracker of ``config`` (default: the TRACKER setting), built once per configuration.

    The few latest configurations are kept side by side, so that jobs of named
    trackers (``TRACKERS``) and jobs using the setting do not rebuild each other's
    tracker (and lose its per-job state) between two events.
    """
    global _cache
    if config is None:
        config = queue_settings.TRACKER
    if not config:
        return None
    cached = _cache or []
    for known, tracker in cached:
        if known == config:
            return tracker
    if not isinstance(config, Mapping):
        raise TrackerConfigError(
            f"ASYNC_QUEUE['TRACKER'] must be a dict, not {type(config).__name__}."
        )
    tracker_class = resolve_class(config.get("CLASS", DEFAULT_CLASS))
    tracker = tracker_class(config)
    _cache = [*cached[-(CACHE_SIZE - 1) :], (copy.deepcopy(dict(config)), tracker)]
    return tracker


def config_for(job: Job) -> Mapping[str, Any] | None:
    """The tracker configuration of ``job``, from settings: its named tracker, or TRACKER.

    None for a job scheduled with ``tracker=False``, and for a name no longer
    configured (logged: the job itself is not affected).
    """
    name = getattr(job, "tracker", "")
    if not name:
        return queue_settings.TRACKER
    if name == NO_TRACKER:
        return None
    trackers = queue_settings.TRACKERS
    config = trackers.get(name) if isinstance(trackers, Mapping) else None
    if config is None:
        logger.warning(
            "Job %s names tracker %r, which ASYNC_QUEUE['TRACKERS'] does not configure; "
            "it is not mirrored.",
            job.pk,
            name,
        )
    return config


def resolve_class(path: Any) -> type[Tracker]:
    """The Tracker subclass named by ``CLASS`` (a dotted path, or the class itself)."""
    try:
        value = import_string(path) if isinstance(path, str) else path
    except ImportError as exc:
        raise TrackerConfigError(f"ASYNC_QUEUE['TRACKER']['CLASS'] = {path!r}: {exc}") from None
    if not (isinstance(value, type) and issubclass(value, Tracker)):
        raise TrackerConfigError(
            f"ASYNC_QUEUE['TRACKER']['CLASS'] = {path!r} is not a subclass of "
            "async_queue.tracking.Tracker."
        )
    return value


def _savepoint(job: Job) -> contextlib.AbstractContextManager[Any]:
    # Inside a transaction of the job's database (the caller's or the job's own), a
    # failed tracker query must not abort it: PostgreSQL refuses every later
    # statement of an aborted transaction.
    alias = job._state.db or DEFAULT_DB_ALIAS
    if connections[alias].in_atomic_block:
        return transaction.atomic(using=alias)
    return contextlib.nullcontext()


def receive(sender: type, job: Job, payload: Mapping[str, Any], **kwargs: Any) -> None:
    """The receiver of every lifecycle signal: hands the event to the job's Tracker."""
    config = config_for(job)
    if not config:
        return
    event = payload.get("event", "")
    try:
        tracker = get_tracker(config)
        if tracker is not None:
            with _savepoint(job):
                tracker.handle(event, job, payload)
    except Exception:
        logger.exception(
            "The tracker failed on the %s event of job %s; the job is not affected.",
            event,
            job.pk,
        )


def connect() -> None:
    """Connect ``receive`` to every lifecycle signal (idempotent)."""
    for event, signal in SIGNALS.items():
        signal.connect(receive, dispatch_uid=f"async_queue.tracking.{event}")


connect()
