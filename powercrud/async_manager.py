"""How powercrud schedules its bulk jobs and reads them back.

A view picks the class with ``get_async_manager_class()`` (default: its
``async_manager_class``, ``AsyncManager``) and configures it with its
``async_manager_config`` dict, whose keys are all optional:

- ``queue``, ``priority``, ``timeout``: passed to ``async_queue.schedule()``.
- ``max_attempts`` (default 1): a bulk operation that failed (a validation
  error, a protected relation) would fail the same way again while the user
  watches the progress modal; the dashboard can retry a failed job by hand. An
  attempt lost to the infrastructure (a worker killed by a deploy, a lost
  connection) is retried anyway, up to ``ASYNC_QUEUE["MAX_LOST_ATTEMPTS"]``.
- ``tracker``: the name of a tracker configured in ``ASYNC_QUEUE["TRACKERS"]``.
  The view's jobs are then mirrored into that model (``schedule(tracker=...)``),
  so a project routes powercrud's jobs to its own task table with configuration
  only. ``False`` turns tracking off for them; left out, the ``TRACKER`` setting
  applies.

The default reads status and progress from the job rows themselves (live
progress through ``async_queue.snapshot``); a subclass can read its
tracker's records instead by overriding ``status()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from async_queue import (
    Job,
    LockTarget,
    Status,
    schedule,
    show_line,
    show_text,
    snapshot,
    tracker_name,
)

CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "queue": (str,),
    "priority": (int,),
    "timeout": (int, float, type(None)),
    "max_attempts": (int,),
    "tracker": (str, bool, type(None)),
}
META_KEY = "powercrud"  # what powercrud records about its job, in the job's meta


class AsyncManagerConfigError(ImproperlyConfigured):
    """A view's ``async_manager_config`` cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class JobStatus:
    """A bulk job as the progress modal shows it."""

    job_id: int
    state: str  # an async_queue Status value: queued, running, succeeded, failed, cancelled
    current: int | None = None
    total: int | None = None
    message: str = ""
    result: Any = None
    error: str = ""

    @property
    def percent(self) -> float | None:
        if self.succeeded:
            return 100.0
        if self.current is None or not self.total:
            return None
        return max(0.0, min(100.0, 100.0 * self.current / self.total))

    @property
    def queued(self) -> bool:
        return self.state == Status.QUEUED

    @property
    def running(self) -> bool:
        return self.state == Status.RUNNING

    @property
    def succeeded(self) -> bool:
        return self.state == Status.SUCCEEDED

    @property
    def failed(self) -> bool:
        return self.state == Status.FAILED

    @property
    def cancelled(self) -> bool:
        return self.state == Status.CANCELLED

    @property
    def finished(self) -> bool:
        return self.succeeded or self.failed or self.cancelled

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.error.splitlines() if line.strip()]


class AsyncManager:
    """Schedules a view's bulk jobs, reads their status and formats their errors."""

    default_max_attempts = 1

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config or {})
        self.check_config()

    def check_config(self) -> None:
        """Refuse unknown keys, wrong types, and a tracker configuration that cannot work."""
        for key, value in self.config.items():
            if key not in CONFIG_TYPES:
                raise AsyncManagerConfigError(
                    f"async_manager_config has an unknown key {key!r}; known keys: "
                    f"{', '.join(CONFIG_TYPES)}."
                )
            wrong_bool = isinstance(value, bool) and bool not in CONFIG_TYPES[key]
            if not isinstance(value, CONFIG_TYPES[key]) or wrong_bool:
                raise AsyncManagerConfigError(
                    f"async_manager_config[{key!r}] = {value!r} has the wrong type; expected "
                    f"{' or '.join(t.__name__ for t in CONFIG_TYPES[key])}."
                )
        if self.config.get("tracker") is True:
            raise AsyncManagerConfigError(
                "async_manager_config['tracker'] = True; name a key of "
                "ASYNC_QUEUE['TRACKERS'], or pass False for no tracker."
            )
        if isinstance(self.config.get("tracker"), str):
            try:
                tracker_name(self.config["tracker"])
            except ValueError as exc:
                raise AsyncManagerConfigError(f"async_manager_config['tracker']: {exc}") from None

    def schedule(
        self,
        function: str,
        kwargs: dict[str, Any],
        *,
        locks: Iterable[LockTarget],
        user: Any = None,
        meta: dict[str, Any] | None = None,
    ) -> Job:
        """Queue ``function(**kwargs)`` declaring ``locks``; the row is written at once.

        ``on_commit=False``: called inside the view's transaction (which holds the
        objects' locks), the job's row and lock rows commit with it, so no other
        request can slip a conflicting write in between the check and the job.
        """
        return schedule(
            function,
            kwargs=kwargs,
            locks=locks,
            user=user,
            meta={META_KEY: dict(meta or {})},
            tracker=self.config.get("tracker"),
            queue=self.config.get("queue"),
            priority=self.config.get("priority", 0),
            timeout=self.config.get("timeout"),
            max_attempts=self.config.get("max_attempts", self.default_max_attempts),
            on_commit=False,
        )

    def get_job(self, job_id: int) -> Job | None:
        return Job.objects.select_related("user").filter(pk=job_id).first()

    def describe(self, job: Job) -> dict[str, Any]:
        """What powercrud recorded about the job when it scheduled it (``meta["powercrud"]``)."""
        meta = job.meta if isinstance(job.meta, dict) else {}
        value = meta.get(META_KEY)
        return value if isinstance(value, dict) else {}

    def status(self, job: Job) -> JobStatus:
        """The job's state and live progress, read from its row (and the progress store).

        Texts are as pages show them: credentials redacted, sizes capped.
        """
        progress = snapshot([job])[job.pk]
        error = ""
        if job.status in (Status.FAILED, Status.CANCELLED):
            error = show_text(self.format_error(job))
        message = show_line(progress.message, 300)
        if job.is_queued and job.attempts:  # an attempt failed and another one is due
            failure = show_line(job.last_error, 200)
            message = f"Attempt {job.attempts} failed ({failure}); retrying…"
        return JobStatus(
            job_id=job.pk,
            state=str(job.status),
            current=progress.current,
            total=progress.total,
            message=message,
            result=job.result,
            error=error,
        )

    def format_error(self, job: Job) -> str:
        """The failure to show: the last attempt's full message (the row keeps a summary)."""
        if job.status == Status.CANCELLED:
            return "The job was cancelled; nothing was changed."
        last = job.errors.order_by("-id").first()
        if last is not None and last.message:
            return last.message
        return job.last_error or "The job failed."
