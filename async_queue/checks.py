"""System checks for the ASYNC_QUEUE setting (ids ``async_queue.E0xx`` / ``W0xx``)."""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .conf import LEASE_BEATS, SETTINGS
from .limits import queue_problems
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
        if key == "ALLOWED_MODULES":
            errors.append(
                Error(
                    "ASYNC_QUEUE['ALLOWED_MODULES'] is no longer supported: a prefix makes every "
                    "function under it callable from a job row.",
                    hint="Declare each job with @async_queue.job, or list its exact dotted name "
                    "in ASYNC_QUEUE['JOBS'], and remove ALLOWED_MODULES.",
                    id="async_queue.E005",
                )
            )
        elif setting is None:
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
    errors.extend(_check_jobs(value.get("JOBS")))
    errors.extend(_check_redaction(value))
    if value.get("MAX_ATTEMPTS") == 0:
        errors.append(
            Error(
                "ASYNC_QUEUE['MAX_ATTEMPTS'] must be at least 1.",
                hint="1 means: never retry.",
                id="async_queue.E006",
            )
        )
    errors.extend(_check_liveness(value))
    errors.extend(
        Error(problem, hint="See the README's flow control section.", id="async_queue.E045")
        for problem in queue_problems()
    )
    return errors


def _check_jobs(names: Any) -> list[CheckMessage]:
    from .callables import find
    from .exceptions import JobNotAllowed

    if not isinstance(names, list | tuple):
        return []  # E003 says so
    errors: list[CheckMessage] = []
    for name in names:
        try:
            if not isinstance(name, str):
                raise JobNotAllowed(f"{name!r} is not a dotted name")
            find(name)
        except (ImportError, JobNotAllowed) as exc:
            errors.append(
                Error(
                    f"ASYNC_QUEUE['JOBS'] lists {name!r}, which cannot be used: {exc}",
                    hint="List exact dotted names of importable functions, such as "
                    "'thirdparty.tasks.send'; no prefixes.",
                    id="async_queue.E007",
                )
            )
    return errors


@register(Tags.compatibility)
def check_periodic_jobs(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every periodic job names a declared job (``async_queue.E008``)."""
    from .callables import find
    from .exceptions import JobNotAllowed, ScheduleError
    from .periodic import all_periodic

    try:
        entries = all_periodic()
    except (ScheduleError, TypeError) as exc:
        return [
            Error(
                f"ASYNC_QUEUE['PERIODIC'] has an entry that cannot be used: {exc}",
                hint="Each entry: {'name': ..., 'function': 'app.tasks.fn', 'cron': '...'} "
                "or 'interval': seconds.",
                id="async_queue.E008",
            )
        ]
    errors: list[CheckMessage] = []
    for entry in entries:
        try:
            find(entry.function)
        except (ImportError, JobNotAllowed) as exc:
            errors.append(
                Error(
                    f"Periodic job {entry.name!r} cannot run: {exc}",
                    hint="Decorate the function with @async_queue.job (or @periodic, which "
                    "declares it), or list it in ASYNC_QUEUE['JOBS'].",
                    id="async_queue.E008",
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
                        id="async_queue.E040",
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
                        id="async_queue.E041",
                    )
                )
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


TASK_BACKENDS = ("async_queue.contrib.tasks.QueueBackend", "async_queue.backends.QueueBackend")


@register(Tags.compatibility)
def check_task_backend(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    tasks = getattr(settings, "TASKS", None) or {}
    uses_backend = any(
        isinstance(config, dict) and config.get("BACKEND") in TASK_BACKENDS
        for config in tasks.values()
    )
    if uses_backend and importlib.util.find_spec("django.tasks") is None:
        return [
            Error(
                "TASKS names async_queue's QueueBackend, but this Django has no django.tasks.",
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
