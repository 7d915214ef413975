"""System checks for the ASYNC_QUEUE setting (ids ``async_queue.E0xx`` / ``W0xx``)."""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import SETTINGS


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


BUSY_MIDDLEWARE = "async_queue.middleware.DatabaseBusyMiddleware"
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"


@register(Tags.compatibility)
def check_busy_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """On SQLite, web writes behind a running job need ``DatabaseBusyMiddleware`` (W030, W031)."""
    return busy_middleware_messages(settings.DATABASES, getattr(settings, "MIDDLEWARE", None))


def busy_middleware_messages(
    databases: dict[str, dict[str, Any]], middleware: list[str] | None
) -> list[CheckMessage]:
    on_sqlite = any(
        str(database.get("ENGINE", "")).endswith("sqlite3") for database in databases.values()
    )
    middleware = list(middleware or [])
    if not on_sqlite:
        return []
    if BUSY_MIDDLEWARE not in middleware:
        return [
            Warning(
                "A SQLite database is configured but MIDDLEWARE lacks "
                f"{BUSY_MIDDLEWARE}: while a job runs (it holds SQLite's only write lock), "
                "web writes that wait past the busy timeout answer 500, and a session that "
                "cannot be saved answers 400 and loses its change.",
                hint=f"Add {BUSY_MIDDLEWARE!r} to MIDDLEWARE, directly after "
                f"{SESSION_MIDDLEWARE!r}: they then answer 503 'busy, try again'.",
                id="async_queue.W030",
            )
        ]
    if SESSION_MIDDLEWARE in middleware and middleware.index(BUSY_MIDDLEWARE) < middleware.index(
        SESSION_MIDDLEWARE
    ):
        return [
            Warning(
                f"{BUSY_MIDDLEWARE} comes before {SESSION_MIDDLEWARE} in MIDDLEWARE, so it "
                "cannot save the session first: a session save that finds the database "
                "locked still answers 400.",
                hint=f"Move it directly after {SESSION_MIDDLEWARE!r}.",
                id="async_queue.W031",
            )
        ]
    return []
