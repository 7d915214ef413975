"""The ``Tracker``: mirrors a job's lifecycle into a model of your project (see the package)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, models, router, transaction
from django.utils import timezone
from django.utils.connection import ConnectionDoesNotExist

from ...models import Job, JobLock
from ...sql import dialect, second_connection
from ...states import Event, Status

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger("async_queue.tracking")

CONFIG_KEYS = ("MODEL", "CLASS", "LOOKUP", "FIELDS", "STATUS_MAP")
DEFAULT_CLASS = "async_queue.contrib.tracking.Tracker"
DEFAULT_LOOKUP = "job_id"
OUTCOMES = frozenset({Event.SUCCEEDED, Event.RETRYING, Event.FAILED, Event.CANCELLED})
SIDE_SUFFIX = "__tracker"

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
        Event.SCHEDULED: ("status", "created", "user", "objects", "payload", "updated"),
        Event.STARTED: ("status", "updated"),
        Event.PROGRESS: ("progress", "message", "updated"),
        Event.SUCCEEDED: ("status", "result", "progress", "completed", "updated"),
        Event.RETRYING: ("status", "error", "message", "updated"),
        Event.FAILED: ("status", "error", "failed", "completed", "updated"),
        Event.CANCELLED: ("status", "completed", "updated"),
        Event.CLEANUP: (),
    }
    # The status a tracked row gets at each event (STATUS_MAP renames them).
    event_status: dict[str, str] = {
        Event.SCHEDULED: Status.QUEUED,
        Event.STARTED: Status.RUNNING,
        Event.RETRYING: "retrying",
        Event.SUCCEEDED: Status.SUCCEEDED,
        Event.FAILED: Status.FAILED,
        Event.CANCELLED: Status.CANCELLED,
    }
    initial_fields: tuple[str, ...] = ("created", "user", "objects")
    side_lock_timeout: float = 2.0

    def __init__(self, config: Mapping[str, Any]) -> None:
        label: Any = config.get("MODEL")  # anything: a bad value is reported below
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
            **self._values(missing, Event.SCHEDULED, job, payload or {}),
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
        ending = event in OUTCOMES or event == Event.CLEANUP
        with self._lock:
            state = self._jobs.get(key)
            if event in (Event.STARTED, Event.PROGRESS):
                state = self._jobs.setdefault(key, _JobState())
                state.open = True
                state.total = (payload.get("progress") or {}).get("total") or state.total
            elif state is not None and ending:
                state.open = False
                values = {**state.pending, **values}
                state.pending = {}
            # The job's state while its transaction is open here, else None.
            inside = (
                state
                if state is not None and state.open and connections[using].in_atomic_block
                else None
            )
            if inside is not None and (inside.buffer or dialect(using).single_writer):
                inside.pending.update(values)
                return
            if inside is not None:
                inside.aside = True
            if event == Event.CLEANUP:
                self._jobs.pop(key, None)
        try:
            if values and inside is not None:
                try:
                    self._write_aside(job, values, using, payload)
                except Exception:
                    with self._lock:  # keep the values, and stop trying aside for this job
                        inside.buffer = True
                        inside.pending = {**values, **inside.pending}
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
                dialect(using).limit_lock_wait(self.side_lock_timeout, side)
                self.write(job, values, side.alias, payload)
        except Exception:
            side.close()  # a failed or timed-out write must not leave a broken connection
            raise


# -- the side connection (PostgreSQL) ----------------------------------------------------


def side_connection(alias: str) -> BaseDatabaseWrapper:
    """A second connection to database ``alias`` in this thread, as ``alias + "__tracker"``.

    ``sql.second_connection()`` (a clone of the alias's settings, outside Django's
    pool), registered only in this thread's ``connections`` (not in
    ``settings.DATABASES``) so that the ORM can write through it.
    """
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
