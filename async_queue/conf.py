"""The one place that reads ``settings.ASYNC_QUEUE``.

Values are read on every access, so ``override_settings`` works in tests. Each
setting has a typed default; ``checks.py`` validates what a project provides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings

# How many heartbeat intervals a worker's heartbeat may be late: on a direct
# connection, the grace after its liveness lock was lost (it reconnects and takes
# the lock again at its next beat); behind a pooler, the least WORKER_TIMEOUT.
LEASE_BEATS = 3


@dataclass(frozen=True)
class Setting:
    default: Any
    types: tuple[type, ...]
    help: str


SETTINGS: dict[str, Setting] = {
    "JOBS": Setting(
        [],
        (list, tuple),
        "Exact dotted names of functions declared jobs without @async_queue.job.",
    ),
    "MAX_ATTEMPTS": Setting(5, (int,), "Attempts before a failing job is marked failed."),
    "MAX_PAYLOAD_BYTES": Setting(
        1024 * 1024, (int,), "Size limit of a job's JSON args + kwargs + meta."
    ),
    "MAX_LOST_ATTEMPTS": Setting(
        3,
        (int,),
        "Attempts lost to the infrastructure (worker or connection lost) are retried until "
        "a job has made this many, even past its max_attempts.",
    ),
    "MAX_SNOOZES": Setting(
        100,
        (int,),
        "Times a job may raise Snooze (run later, no attempt used) before it fails instead.",
    ),
    "BACKOFF_BASE": Setting(2.0, (int, float), "Seconds before the first retry."),
    "BACKOFF_FACTOR": Setting(2.0, (int, float), "Growth of the delay per attempt."),
    "BACKOFF_MAX": Setting(3600.0, (int, float), "Cap on the delay between attempts."),
    "QUEUES": Setting(
        {},
        (dict,),
        "Limits per queue, enforced across all workers: {'emails': {'concurrency': 5, "
        "'rate': '100/m'}}.",
    ),
    "POLL_INTERVAL": Setting(1.0, (int, float), "Seconds a --forever worker sleeps when idle."),
    "TRACEBACK_MAX_BYTES": Setting(
        64 * 1024, (int,), "Stored tracebacks are cut to this size (head and tail kept)."
    ),
    "DEFAULT_QUEUE": Setting("default", (str,), "Queue of jobs scheduled without one."),
    "TIMEOUT": Setting(
        None, (int, float, type(None)), "Default seconds an attempt may run (None: no limit)."
    ),
    "RECOVERY_INTERVAL": Setting(
        10.0, (int, float), "Seconds between a worker's checks for jobs of dead workers."
    ),
    "HEARTBEAT_INTERVAL": Setting(
        1.0,
        (int, float),
        "Seconds between two heartbeats of a worker (its Worker row's heartbeat_at), written "
        "on a connection of its own.",
    ),
    "WORKER_TIMEOUT": Setting(
        30.0,
        (int, float),
        "Behind a connection pooler: a worker whose heartbeat is older than this many seconds "
        "is dead, and its running jobs are recovered. At least 3 x HEARTBEAT_INTERVAL.",
    ),
    "LOCK_RETRY_DELAY": Setting(
        1.0, (int, float), "Seconds a job whose object locks are busy waits before a new try."
    ),
    "MAX_LOCKS": Setting(100_000, (int,), "Most lock keys one job may declare."),
    "PROGRESS_INTERVAL": Setting(
        0.25, (int, float), "Least seconds between two progress writes of one job."
    ),
    "PERIODIC": Setting(
        [],
        (list, tuple),
        "Periodic jobs: [{'name': ..., 'function': 'app.tasks.fn', 'cron': '0 3 * * *'}, ...].",
    ),
    "METRICS_TOKEN": Setting(
        None, (str, type(None)), "A bearer token that may read the metrics endpoint."
    ),
    "METRICS_WINDOW": Setting(
        60.0,
        (int, float),
        "Seconds of recently finished jobs the metrics endpoint counts and sums.",
    ),
    "BUSY_RETRY_AFTER": Setting(
        5,
        (int,),
        "Seconds DatabaseBusyMiddleware's 503 answer asks a client to wait (Retry-After).",
    ),
    "TRACKER": Setting(
        None,
        (dict, type(None)),
        "Mirror lifecycle events into a model of yours: {'MODEL': 'app.Model', 'FIELDS': {...}}.",
    ),
    "TRACKERS": Setting(
        {},
        (dict,),
        "Named tracker configurations (each shaped like TRACKER) a job picks with tracker='name'.",
    ),
    "LOCK_ESCALATION": Setting(
        100, (int,), "Above this many objects of one model, a job locks the whole model."
    ),
    "MAX_RESULT_BYTES": Setting(
        1024 * 1024,
        (int,),
        "Largest JSON (UTF-8 bytes) a job may return; a larger result fails the attempt.",
    ),
    "SHOW_MAX_BYTES": Setting(
        64 * 1024,
        (int,),
        "Most bytes of one stored value (args, kwargs, meta, result, error, traceback) a page "
        "shows; the rest is summed up in a note.",
    ),
    "REDACT_KEYS": Setting(
        [],
        (list, tuple),
        "More key names whose values pages never show, matched as whole words of a key "
        "(['iban', 'ssn'] also hides 'customer_iban'); password, token, secret, auth, dsn, "
        "credentials, private_key, ... are built in.",
    ),
    "REDACT_PATTERNS": Setting(
        [],
        (list, tuple),
        "More regular expressions for credentials inside strings; each match is shown as "
        "'••••••' (only its 'secret' group, if it has one).",
    ),
}


class SettingsAccessor:
    """Attribute access to one settings dict (``ASYNC_QUEUE``, ...), with defaults filled in."""

    def __init__(self, setting_name: str, known: dict[str, Setting]) -> None:
        self.setting_name = setting_name
        self.known = known

    def __getattr__(self, name: str) -> Any:
        try:
            setting = self.known[name]
        except KeyError:
            raise AttributeError(f"Unknown {self.setting_name} setting {name!r}.") from None
        return self.raw().get(name, setting.default)

    def raw(self) -> dict[str, Any]:
        value = getattr(django_settings, self.setting_name, None)
        return value if isinstance(value, dict) else {}


queue_settings = SettingsAccessor("ASYNC_QUEUE", SETTINGS)
