"""System checks of ``TRACKER`` and ``TRACKERS`` (``async_queue.E010``-``E018``, ``W010``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from ...conf import queue_settings

if TYPE_CHECKING:
    pass

from .receivers import resolve_class
from .tracker import CONFIG_KEYS, DEFAULT_LOOKUP, Tracker, TrackerConfigError

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
    label: Any = config.get("MODEL")  # anything: a bad value is reported below
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
