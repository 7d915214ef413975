"""System checks for the ASYNC_QUEUE setting (ids ``async_queue.E0xx`` / ``W0xx``)."""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from .conf import SETTINGS
from .redaction import compile_pattern, normalize_key


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
    errors.extend(_check_redaction(value))
    if value.get("MAX_ATTEMPTS") == 0:
        errors.append(
            Error(
                "ASYNC_QUEUE['MAX_ATTEMPTS'] must be at least 1.",
                hint="1 means: never retry.",
                id="async_queue.E006",
            )
        )
    return errors


def _check_redaction(value: dict[str, Any]) -> list[CheckMessage]:
    """``REDACT_KEYS`` are non-empty names; ``REDACT_PATTERNS`` compile and match something."""
    errors: list[CheckMessage] = []
    keys = value.get("REDACT_KEYS")
    if isinstance(keys, list | tuple):
        for index, key in enumerate(keys):
            if not isinstance(key, str) or not normalize_key(key):
                errors.append(
                    Error(
                        f"ASYNC_QUEUE['REDACT_KEYS'][{index}] must be a key name with letters "
                        f"or digits; got {key!r}.",
                        hint="For example ['iban', 'ssn']: values under keys with these "
                        "words are never shown.",
                        id="async_queue.E030",
                    )
                )
    patterns = value.get("REDACT_PATTERNS")
    if isinstance(patterns, list | tuple):
        for index, pattern in enumerate(patterns):
            try:
                compile_pattern(pattern, index)
            except ImproperlyConfigured as exc:
                errors.append(
                    Error(
                        str(exc),
                        hint="Give regular expressions that match the secret itself, e.g. "
                        "r'sk_live_[0-9a-zA-Z]{24}', or r'pin=(?P<secret>\\d+)' to hide "
                        "only a group.",
                        id="async_queue.E031",
                    )
                )
    return errors


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
