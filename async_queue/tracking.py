"""Mirror the lifecycle of jobs into a model of your own, by configuration.

::

    ASYNC_QUEUE = {"TRACKER": {
        "MODEL": "myapp.TaskRecord",              # required
        "CLASS": "async_queue.tracking.Tracker",  # optional: a Tracker subclass (dotted path)
        "LOOKUP": "job_id",                        # your field holding Job.pk (the default)
        "FIELDS": {"status": "state", "progress": "percent", "result": "result", ...},
        "STATUS_MAP": {"succeeded": "done"},       # optional: your own status values
    }}

A receiver on every signal of ``async_queue.signals`` hands each event to a
``Tracker`` built from the setting (read on every event, so ``override_settings``
works; the instance is cached per configuration). The first event seen for a job
(normally ``scheduled``; any event with something to write) creates its record,
also filling ``created``, ``user`` and ``objects`` from the job; every later event
updates only the fields it provides, with a queryset ``update()``:

=========  ==========================================================================
event      lifecycle fields written
=========  ==========================================================================
scheduled  status (queued), created, user, objects, payload, updated
started    status (running), updated
progress   progress, message, updated
succeeded  status, result, progress (100% if the total is known), completed, updated
retrying   status (retrying), error, message (the error's), updated
failed     status, error, failed, completed, updated
cancelled  status, completed, updated
cleanup    nothing of its own (buffered values, see below)
=========  ==========================================================================

Lifecycle fields you do not map are skipped, and a value that is None is never
written, so a later event cannot blank a meaningful value (the result stays
after ``cleanup``, the error after the next ``started``). Timestamps are the
event's ``timestamp``, except ``created``, which is the job's ``created_at``.
Statuses are ``queued``, ``running``, ``retrying``, ``succeeded``, ``failed`` and
``cancelled``, translated by ``STATUS_MAP``. How a value looks in your model is
decided by the ``format_*`` hooks from the target field's type; subclass
``Tracker``, override a hook and name the subclass in ``CLASS``.

**Per job, by name.** ``ASYNC_QUEUE["TRACKERS"] = {"bulk": {...}}`` configures
named trackers (each shaped like ``TRACKER``); a job scheduled with
``schedule(..., tracker="bulk")`` is mirrored by that one instead of the
setting, and ``tracker=False`` turns tracking off for it. The name is stored in
the job's ``tracker`` column; the configuration always comes from settings.
Nothing read from a job row, ``meta`` included, configures a tracker: ``meta``
is the caller's free-form data, and a model or class path taken from it would let
whoever schedules a job write any field of any model. ``manage.py check``
validates ``TRACKER`` and every entry of ``TRACKERS``.

**The job's transaction.** Between ``started`` and its outcome event a job's
body runs inside one transaction, and ``progress`` is sent from inside it. A
write to your model through that connection would be invisible until commit,
would roll back with a failed attempt, and on PostgreSQL would lock your record
so that any other connection writing it waits for the job (a deadlock when that
connection belongs to the same process). So while a job's window is open (per
job, from the event order) *and* the tracker's database connection is inside a
transaction block, the tracker does not write through that connection (a
``progress`` event opens the window too, should ``started`` have been missed):

- PostgreSQL (and any multi-writer database): it writes through a second
  connection to the same database, registered in this thread as
  ``"<alias>__tracker"`` (a clone of the alias's settings, outside Django's
  pool), each write in a short transaction of its own with a ``lock_timeout`` of
  ``side_lock_timeout`` seconds, so it can never hang a job: the progress is
  visible at once and survives a rollback. The
  connection is closed when the job's outcome (or ``cleanup``) arrives. If a
  write there fails (the job's body itself locked your record, say), it is
  logged, and the job's later values are buffered as on SQLite.
- SQLite: one writer at a time, and the job's transaction holds the write lock,
  so a second connection would wait and then fail with "database is locked".
  The tracker buffers the values instead (the latest progress wins) and writes
  them when the window closes: merged under the outcome event's own values, or
  at ``cleanup`` (sent after the job's transaction ended). So on SQLite your
  record shows a job's progress when the attempt ends; live progress is in the
  queue's own store (``async_queue.progress``).

Outside a window (``scheduled`` or ``cancelled`` inside a caller's transaction,
say) the tracker writes through the ordinary connection, so its writes commit or
roll back with the caller's. If your model lives on a database of its own, its
connection is not inside the job's transaction and every write goes straight
there. A tracker write inside a transaction is wrapped in a savepoint.

**Failures.** A failing tracker is logged (logger ``async_queue.tracking``) and
swallowed: it never breaks or retries a job, and never waits on a lock longer
than ``side_lock_timeout`` while a job's transaction is open.

``check_tracker`` validates the setting (``async_queue.E010``-``E017``,
``W010``). Make your LOOKUP field unique: two processes creating a job's record
at once then cannot make two.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, models, router, transaction
from django.utils import timezone
from django.utils.connection import ConnectionDoesNotExist
from django.utils.module_loading import import_string

from .conf import queue_settings
from .signals import SIGNALS

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from .models import Job

logger = logging.getLogger("async_queue.tracking")

CONFIG_KEYS = ("MODEL", "CLASS", "LOOKUP", "FIELDS", "STATUS_MAP")
DEFAULT_CLASS = "async_queue.tracking.Tracker"
DEFAULT_LOOKUP = "job_id"
OUTCOMES = frozenset({"succeeded", "retrying", "failed", "cancelled"})
SIDE_SUFFIX = "__tracker"
NO_TRACKER = "-"  # Job.tracker of a job scheduled with tracker=False

_TEXT_FIELDS = (models.CharField, models.TextField)


class TrackerConfigError(ImproperlyConfigured):
    """``ASYNC_QUEUE["TRACKER"]`` cannot be used; ``manage.py check`` says why."""


class _JSONEncoder(DjangoJSONEncoder):
    """Django's encoder (ISO datetimes), with ``str()`` for anything else it cannot encode."""

    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return str(o)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: datetimes as ISO text, unknown objects as ``str()``."""
    return json.loads(json.dumps(value, cls=_JSONEncoder))


@dataclass
class _JobState:
    """What the tracker knows of one job while an attempt of it runs."""

    open: bool = False  # between started and the outcome: the job's transaction may be open
    pending: dict[str, Any] = field(default_factory=dict)  # SQLite: values waiting for the end
    aside: bool = False  # a side connection was used for it
    buffer: bool = False  # the side connection failed: buffer until the window closes
    total: Any = None  # the latest progress total reported


class Tracker:
    """Writes the lifecycle events of jobs into ``MODEL``; subclass it to change a hook.

    ``provides`` (event -> lifecycle fields it writes) and ``event_status`` (event ->
    lifecycle status) are class attributes; ``side_lock_timeout`` bounds how long a
    write on the side connection waits for a row lock (PostgreSQL).
    """

    provides: dict[str, tuple[str, ...]] = {
        "scheduled": ("status", "created", "user", "objects", "payload", "updated"),
        "started": ("status", "updated"),
        "progress": ("progress", "message", "updated"),
        "succeeded": ("status", "result", "progress", "completed", "updated"),
        "retrying": ("status", "error", "message", "updated"),
        "failed": ("status", "error", "failed", "completed", "updated"),
        "cancelled": ("status", "completed", "updated"),
        "cleanup": (),
    }
    event_status: dict[str, str] = {
        "scheduled": "queued",
        "started": "running",
        "retrying": "retrying",
        "succeeded": "succeeded",
        "failed": "failed",
        "cancelled": "cancelled",
    }
    initial_fields: tuple[str, ...] = ("created", "user", "objects")
    side_lock_timeout: float = 2.0

    def __init__(self, config: Mapping[str, Any]) -> None:
        label = config.get("MODEL")
        try:
            self.model: type[models.Model] = apps.get_model(label)
        except (LookupError, TypeError, ValueError, AttributeError):
            raise TrackerConfigError(
                f"ASYNC_QUEUE['TRACKER']['MODEL'] = {label!r} is not an installed model "
                "('app_label.ModelName')."
            ) from None
        self.lookup: str = config.get("LOOKUP", DEFAULT_LOOKUP)
        self.fields: dict[str, str] = dict(config.get("FIELDS") or {})
        self.status_map: dict[str, Any] = dict(config.get("STATUS_MAP") or {})
        unknown = sorted(set(self.fields) - set(self.lifecycle_fields()))
        if unknown:
            raise TrackerConfigError(
                f"ASYNC_QUEUE['TRACKER']['FIELDS'] has unknown lifecycle keys {unknown}."
            )
        try:
            self.lookup_field = self.model._meta.get_field(self.lookup)
            self.targets: dict[str, models.Field] = {
                key: self.model._meta.get_field(name) for key, name in self.fields.items()
            }
        except FieldDoesNotExist as exc:
            raise TrackerConfigError(f"ASYNC_QUEUE['TRACKER']: {exc}") from None
        self._jobs: dict[tuple[str, Any], _JobState] = {}
        self._lock = threading.Lock()

    @classmethod
    def lifecycle_fields(cls) -> list[str]:
        """The lifecycle keys FIELDS may map: every field some event provides."""
        keys = {key for provided in cls.provides.values() for key in provided}
        return sorted(keys | set(cls.initial_fields))

    # -- hooks: what a value looks like in your model ---------------------------------

    def format_status(self, status: str) -> Any:
        """Your value for lifecycle ``status`` (``STATUS_MAP`` applied)."""
        return self.status_map.get(status, status)

    def format_progress(self, progress: Mapping[str, Any]) -> Any:
        """``progress`` (``current``/``total``/``message``) for the progress field.

        A number field gets the percentage 0-100 (None while the total is unknown),
        a text field ``"current/total message"``, anything else the whole dict.
        """
        current, total = progress.get("current"), progress.get("total")
        message = progress.get("message") or ""
        percent = None
        if total and current is not None:
            percent = max(0.0, min(100.0, current * 100 / total))
        target = self.targets.get("progress")
        if isinstance(target, _TEXT_FIELDS):
            done = f"{current}/{total}" if total else ("" if current is None else str(current))
            return f"{done} {message}".strip() or None
        if isinstance(target, models.IntegerField):
            return None if percent is None else int(percent)
        if isinstance(target, models.DecimalField):
            return None if percent is None else Decimal(str(round(percent, target.decimal_places)))
        if isinstance(target, models.FloatField):
            return None if percent is None else round(percent, 2)
        return {"current": current, "total": total, "message": message, "percent": percent}

    def format_user(self, job: Job) -> Any:
        """Who the job is for: the user for a foreign key, its username for text, else its pk."""
        if job.user_id is None:
            return None
        target = self.targets.get("user")
        if target is not None and target.is_relation:
            return job.user
        if isinstance(target, _TEXT_FIELDS):
            return str(job.user)
        return job.user_id

    def format_objects(self, job: Job, keys: list[str]) -> Any:
        """The lock keys the job declared: a list, comma-joined for text, a count for integers."""
        target = self.targets.get("objects")
        if isinstance(target, _TEXT_FIELDS):
            return ", ".join(keys)
        if isinstance(target, models.IntegerField):
            return len(keys)
        return list(keys)

    def format_payload(self, event: str, payload: Mapping[str, Any]) -> Any:
        """The event's payload as a JSON-able dict (datetimes as ISO text)."""
        return jsonable(dict(payload))

    def format_result(self, result: Any) -> Any:
        """The job's return value (stored as JSON text in a text field)."""
        return result

    def format_error(self, error: Any) -> Any:
        """The failed attempt's error, as text."""
        return None if error is None else str(error)

    # -- building one update ------------------------------------------------------------

    def lifecycle_value(self, key: str, event: str, job: Job, payload: Mapping[str, Any]) -> Any:
        """The value of lifecycle field ``key`` at ``event``, formatted (None: nothing to write)."""
        timestamp = payload.get("timestamp") or timezone.now()
        progress = payload.get("progress") or {}
        match key:
            case "status":
                status = self.event_status.get(event)
                return None if status is None else self.format_status(status)
            case "message":
                if event == "progress":
                    return progress.get("message", payload.get("message"))
                return payload.get("message") or self.format_error(payload.get("error"))
            case "progress":
                if event != "progress":  # an ending: complete, if the total is known
                    total = progress.get("total") or self._total(job) or job.progress_total
                    if not total:
                        return None
                    message = progress.get("message") or ""
                    progress = {"current": total, "total": total, "message": message}
                return self.format_progress(progress) if progress else None
            case "result":
                return self.format_result(payload.get("result"))
            case "error":
                return self.format_error(payload.get("error"))
            case "created":
                return job.created_at if isinstance(job.created_at, datetime) else timestamp
            case "updated" | "completed" | "failed":
                return timestamp
            case "user":
                return self.format_user(job)
            case "objects":
                return self.format_objects(job, self.lock_keys(job, payload))
            case "payload":
                return self.format_payload(event, payload)
        return None

    def values_for(self, event: str, job: Job, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The partial update of your record for one event: {model field: value}."""
        return self._values(self.provides.get(event, ()), event, job, payload)

    def _values(
        self, keys: Iterable[str], event: str, job: Job, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        values = {}
        for key in keys:
            target = self.targets.get(key)
            if target is None:
                continue
            value = self.lifecycle_value(key, event, job, payload)
            if value is not None:
                values[target.name] = self.to_field(target, value)
        return values

    def to_field(self, target: models.Field, value: Any) -> Any:
        """Fit a formatted value to the field it is written to (text, JSON, dates)."""
        if isinstance(target, _TEXT_FIELDS):
            if isinstance(value, date):
                value = value.isoformat()
            elif not isinstance(value, str):
                value = json.dumps(jsonable(value), ensure_ascii=False)
            if target.max_length and len(value) > target.max_length:
                value = value[: target.max_length - 1] + "…"
        elif isinstance(target, models.JSONField):
            value = jsonable(value)
        elif isinstance(target, models.DateTimeField):
            pass
        elif isinstance(target, models.DateField) and isinstance(value, datetime):
            value = value.date()
        return value

    def lock_keys(self, job: Job, payload: Mapping[str, Any]) -> list[str]:
        """The job's declared lock keys: from the payload, the unsaved job, or its rows."""
        keys = payload.get("locks")
        if keys is None:
            keys = getattr(job, "lock_keys", None)
        if keys is None:
            from .models import JobLock

            keys = []
            if job.has_locks:
                rows = JobLock.objects.using(job._state.db or DEFAULT_DB_ALIAS)
                keys = rows.filter(job_id=job.pk).order_by("key").values_list("key", flat=True)
        return [str(key) for key in keys]

    # -- records --------------------------------------------------------------------------

    def database(self, job: Job) -> str:
        """The database alias your records are written to."""
        return router.db_for_write(self.model)

    def records(self, job: Job, using: str) -> models.QuerySet:
        """The queryset of the job's record (by ``LOOKUP``)."""
        return self.model._default_manager.using(using).filter(**{self.lookup: job.pk})

    def record_for(
        self,
        job: Job,
        create: bool = False,
        *,
        using: str | None = None,
        values: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> models.Model | None:
        """The job's record; if it has none and ``create``, a new one holding ``values``."""
        using = using or self.database(job)
        values = dict(values or {})
        record = self.records(job, using).first()
        if record is not None or not create:
            return record
        # A record first created by a later event still gets what scheduled would set.
        missing = [
            key
            for key in self.initial_fields
            if key in self.targets and self.targets[key].name not in values
        ]
        initial = {
            self.lookup_field.attname: job.pk,
            **self._values(missing, "scheduled", job, payload or {}),
            **values,
        }
        try:
            with transaction.atomic(using=using):
                return self.model._default_manager.using(using).create(**initial)
        except IntegrityError:
            # Created meanwhile by another process (a unique LOOKUP): update that one.
            record = self.records(job, using).first()
            if record is None:
                raise
        for name, value in values.items():
            setattr(record, name, value)
        record.save(using=using, update_fields=list(values))
        return record

    def write(
        self, job: Job, values: Mapping[str, Any], using: str, payload: Mapping[str, Any]
    ) -> None:
        """Update only ``values`` in the job's record, creating the record if it has none."""
        # Inside a transaction, a savepoint: a failed write must not abort it.
        in_transaction = connections[using].in_atomic_block
        with transaction.atomic(using=using) if in_transaction else contextlib.nullcontext():
            if not self.records(job, using).update(**values):
                self.record_for(job, create=True, using=using, values=values, payload=payload)

    # -- events ---------------------------------------------------------------------------

    def handle(self, event: str, job: Job, payload: Mapping[str, Any]) -> None:
        """Mirror one lifecycle event of ``job`` (what the signal receivers call)."""
        if job.pk is None:
            return
        values = self.values_for(event, job, payload)
        using = self.database(job)
        key = (job._state.db or DEFAULT_DB_ALIAS, job.pk)
        ending = event in OUTCOMES or event == "cleanup"
        with self._lock:
            state = self._jobs.get(key)
            if event in ("started", "progress"):
                state = self._jobs.setdefault(key, _JobState())
                state.open = True
                state.total = (payload.get("progress") or {}).get("total") or state.total
            elif state is not None and ending:
                state.open = False
                values = {**state.pending, **values}
                state.pending = {}
            inside = state is not None and state.open and connections[using].in_atomic_block
            if inside and (state.buffer or connections[using].vendor == "sqlite"):
                state.pending.update(values)
                return
            if inside:
                state.aside = True
            if event == "cleanup":
                self._jobs.pop(key, None)
        try:
            if values and inside:
                try:
                    self._write_aside(job, values, using, payload)
                except Exception:
                    with self._lock:  # keep the values, and stop trying aside for this job
                        state.buffer = True
                        state.pending = {**values, **state.pending}
                    raise
            elif values:
                self.write(job, values, using, payload)
        finally:
            if ending and state is not None and state.aside:
                state.aside = False
                close_side_connection(using)

    def _total(self, job: Job) -> Any:
        state = self._jobs.get((job._state.db or DEFAULT_DB_ALIAS, job.pk))
        return None if state is None else state.total

    def _write_aside(
        self, job: Job, values: Mapping[str, Any], using: str, payload: Mapping[str, Any]
    ) -> None:
        """Write on the side connection, outside the transaction the job's body runs in.

        In a short transaction of its own whose ``lock_timeout`` (PostgreSQL, set for
        that transaction only, so it holds behind a transaction pooler too) bounds how
        long a write can wait for a row lock.
        """
        side = side_connection(using)
        try:
            with transaction.atomic(using=side.alias):
                if side.vendor == "postgresql":
                    with side.cursor() as cursor:
                        cursor.execute(
                            "SELECT set_config('lock_timeout', %s, true)",
                            [f"{int(self.side_lock_timeout * 1000)}ms"],
                        )
                self.write(job, values, side.alias, payload)
        except Exception:
            side.close()  # a failed or timed-out write must not leave a broken connection
            raise


# -- the side connection (PostgreSQL) ----------------------------------------------------


def side_connection(alias: str) -> BaseDatabaseWrapper:
    """A second connection to database ``alias`` in this thread, as ``alias + "__tracker"``.

    ``db.second_connection()`` (a clone of the alias's settings, outside Django's
    pool), registered only in this thread's ``connections`` (not in
    ``settings.DATABASES``) so that the ORM can write through it.
    """
    from .sql import second_connection

    name = alias + SIDE_SUFFIX
    with contextlib.suppress(ConnectionDoesNotExist):
        return connections[name]
    side = second_connection(alias, name)
    connections[name] = side
    return side


def close_side_connection(alias: str) -> None:
    """Close this thread's side connection to ``alias``, if it has one."""
    with contextlib.suppress(ConnectionDoesNotExist):
        connections[alias + SIDE_SUFFIX].close()


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


# -- system checks --------------------------------------------------------------------------


@register(Tags.compatibility)
def check_tracker(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Validate ``TRACKER`` and ``TRACKERS`` (ids ``async_queue.E010``-``E018``, ``W010``)."""
    errors = _check_config("ASYNC_QUEUE['TRACKER']", queue_settings.TRACKER)
    trackers = queue_settings.TRACKERS
    if not isinstance(trackers, dict):
        return errors  # check_settings reports the type
    for name, config in trackers.items():
        if not isinstance(name, str) or not name.isidentifier():
            errors.append(
                Error(
                    f"ASYNC_QUEUE['TRACKERS'] has the key {name!r}; tracker names are identifiers.",
                    hint="Use names such as 'bulk' or 'reports'.",
                    id="async_queue.E018",
                )
            )
        elif config is None:
            errors.append(
                Error(
                    f"ASYNC_QUEUE['TRACKERS'][{name!r}] is None.",
                    hint="Give it a configuration, or schedule with tracker=False for none.",
                    id="async_queue.E010",
                )
            )
        else:
            errors.extend(_check_config(f"ASYNC_QUEUE['TRACKERS'][{name!r}]", config))
    return errors


def _check_config(where: str, config: Any) -> list[CheckMessage]:
    if config is None:
        return []
    if not isinstance(config, dict):
        return [
            Error(
                f"{where} must be a dict, not {type(config).__name__}.",
                hint="Set it to {'MODEL': 'app_label.Model', 'FIELDS': {...}}, or None.",
                id="async_queue.E010",
            )
        ]
    errors: list[CheckMessage] = []
    tracker_class: type[Tracker] = Tracker
    if "CLASS" in config:
        try:
            tracker_class = resolve_class(config["CLASS"])
        except TrackerConfigError as exc:
            errors.append(
                Error(
                    str(exc).replace("ASYNC_QUEUE['TRACKER']", where),
                    hint="Name a subclass of async_queue.tracking.Tracker by its dotted path.",
                    id="async_queue.E015",
                )
            )
    model = None
    label = config.get("MODEL")
    try:
        model = apps.get_model(label)
    except (LookupError, TypeError, ValueError, AttributeError):
        errors.append(
            Error(
                f"{where}['MODEL'] = {label!r} is not an installed model.",
                hint="Name the model that mirrors jobs as 'app_label.ModelName'.",
                id="async_queue.E011",
            )
        )
    known = tracker_class.lifecycle_fields()
    fields = config.get("FIELDS", {})
    if not isinstance(fields, dict):
        errors.append(
            Error(
                f"{where}['FIELDS'] must be a dict, not {type(fields).__name__}.",
                hint="Map lifecycle keys to your model's fields: {'status': 'state', ...}.",
                id="async_queue.E013",
            )
        )
        fields = {}
    for key, name in fields.items():
        if key not in known:
            errors.append(
                Error(
                    f"{where}['FIELDS'] has an unknown lifecycle key {key!r}.",
                    hint=f"Known keys: {', '.join(known)}.",
                    id="async_queue.E013",
                )
            )
        elif model is not None and not _is_writable_field(model, name):
            errors.append(
                Error(
                    f"{where}['FIELDS'][{key!r}] = {name!r} is not a field of {model._meta.label}.",
                    hint=f"Use one of: {', '.join(_writable_fields(model))}, or leave {key!r} out.",
                    id="async_queue.E012",
                )
            )
    lookup = config.get("LOOKUP", DEFAULT_LOOKUP)
    if model is not None:
        try:
            lookup_field = model._meta.get_field(lookup) if isinstance(lookup, str) else None
        except FieldDoesNotExist:
            lookup_field = None
        if lookup_field is None or not lookup_field.concrete:
            errors.append(
                Error(
                    f"{where}['LOOKUP'] = {lookup!r} is not a field of {model._meta.label}.",
                    hint="Name the field that holds Job.pk (an integer field or a foreign key "
                    "to async_queue.Job); the default is 'job_id'.",
                    id="async_queue.E014",
                )
            )
        elif not _is_unique(model, lookup_field):
            errors.append(
                CheckWarning(
                    f"{where}['LOOKUP'] field {model._meta.label}.{lookup} is not unique.",
                    hint="Add unique=True, so that a job can never get two records.",
                    id="async_queue.W010",
                )
            )
    unknown = sorted(str(key) for key in set(config) - set(CONFIG_KEYS))
    if unknown:
        errors.append(
            Error(
                f"{where} has unknown keys {', '.join(map(repr, unknown))}.",
                hint=f"Known keys: {', '.join(CONFIG_KEYS)}.",
                id="async_queue.E016",
            )
        )
    statuses = sorted(set(tracker_class.event_status.values()))
    status_map = config.get("STATUS_MAP", {})
    if not isinstance(status_map, dict) or set(status_map) - set(statuses):
        errors.append(
            Error(
                f"{where}['STATUS_MAP'] must map lifecycle statuses to your "
                f"values; got {status_map!r}.",
                hint=f"Lifecycle statuses: {', '.join(statuses)}.",
                id="async_queue.E017",
            )
        )
    return errors


def _writable_fields(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if not f.primary_key]


def _is_writable_field(model: type[models.Model], name: Any) -> bool:
    return any(
        name in (f.name, f.attname) for f in model._meta.concrete_fields if not f.primary_key
    )


def _is_unique(model: type[models.Model], target: models.Field) -> bool:
    if target.unique:
        return True
    return any(
        isinstance(constraint, models.UniqueConstraint)
        and constraint.condition is None
        and list(constraint.fields) == [target.name]
        for constraint in model._meta.constraints
    )
