"""System checks for the ASYNC_QUEUE setting (ids ``async_queue.E0xx`` / ``W0xx``)."""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

from .conf import LEASE_BEATS, SETTINGS


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    value = getattr(settings, "ASYNC_QUEUE", {})
    if not isinstance(value, dict):
        return [
            Error(
                f"ASYNC_QUEUE must be a dict, not {type(value).__name__}.",
                hint="Set ASYNC_QUEUE = {'MAX_ATTEMPTS': 5, ...} in your settings.",
                id="async_queue.E001",
            )
        ]
    errors: list[CheckMessage] = []
    for key, given in value.items():
        setting = SETTINGS.get(key)
        if setting is None:
            errors.append(
                Error(
                    f"ASYNC_QUEUE has an unknown key {key!r}.",
                    hint=f"Known keys: {', '.join(sorted(SETTINGS))}.",
                    id="async_queue.E002",
                )
            )
        elif not isinstance(given, setting.types) or isinstance(given, bool):
            expected = " or ".join("None" if t is type(None) else t.__name__ for t in setting.types)
            errors.append(
                Error(
                    f"ASYNC_QUEUE[{key!r}] must be {expected}, not {type(given).__name__}.",
                    hint=setting.help,
                    id="async_queue.E003",
                )
            )
        elif isinstance(given, int | float) and given < 0:
            errors.append(
                Error(
                    f"ASYNC_QUEUE[{key!r}] must not be negative; got {given!r}.",
                    hint=setting.help,
                    id="async_queue.E004",
                )
            )
    modules = value.get("ALLOWED_MODULES")
    if isinstance(modules, list | tuple) and any(not isinstance(m, str) or not m for m in modules):
        errors.append(
            Error(
                "ASYNC_QUEUE['ALLOWED_MODULES'] must list non-empty dotted module prefixes.",
                hint="For example ['myapp', 'myproject.jobs'].",
                id="async_queue.E005",
            )
        )
    if value.get("MAX_ATTEMPTS") == 0:
        errors.append(
            Error(
                "ASYNC_QUEUE['MAX_ATTEMPTS'] must be at least 1.",
                hint="1 means: never retry.",
                id="async_queue.E006",
            )
        )
    errors.extend(_check_liveness(value))
    return errors


def _check_liveness(value: dict[str, Any]) -> list[CheckMessage]:
    """A worker behind a pooler is dead after WORKER_TIMEOUT: several heartbeats must fit in it."""
    interval = value.get("HEARTBEAT_INTERVAL", SETTINGS["HEARTBEAT_INTERVAL"].default)
    timeout = value.get("WORKER_TIMEOUT", SETTINGS["WORKER_TIMEOUT"].default)
    numbers = all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in (interval, timeout)
    )
    if not numbers:
        return []  # E003 said so
    if interval <= 0:
        return [
            Error(
                f"ASYNC_QUEUE['HEARTBEAT_INTERVAL'] must be more than 0 seconds; got {interval!r}.",
                hint="The default is 1.0: a worker refreshes its heartbeat every second.",
                id="async_queue.E030",
            )
        ]
    if timeout < LEASE_BEATS * interval:
        return [
            Error(
                f"ASYNC_QUEUE['WORKER_TIMEOUT'] ({timeout!r}s) must be at least "
                f"{LEASE_BEATS} x HEARTBEAT_INTERVAL ({LEASE_BEATS * interval:g}s): behind a "
                "connection pooler a worker whose heartbeat is older than WORKER_TIMEOUT is "
                "taken for dead and its jobs run again.",
                hint=f"Raise WORKER_TIMEOUT to {LEASE_BEATS * interval:g} or more (default 30), "
                "or lower HEARTBEAT_INTERVAL.",
                id="async_queue.E031",
            )
        ]
    return []


@register(Tags.compatibility)
def check_task_backend(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    tasks = getattr(settings, "TASKS", None) or {}
    uses_backend = any(
        isinstance(config, dict) and config.get("BACKEND") == "async_queue.backends.QueueBackend"
        for config in tasks.values()
    )
    if uses_backend and importlib.util.find_spec("django.tasks") is None:
        return [
            Error(
                "TASKS names async_queue.backends.QueueBackend, but this Django has no "
                "django.tasks.",
                hint="The django.tasks backend needs Django 6.0 or later; on 5.2 use "
                "async_queue.schedule() directly.",
                id="async_queue.E020",
            )
        ]
    return []
