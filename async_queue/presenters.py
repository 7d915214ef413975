"""What the dashboard's templates show: rows, progress bars, lock lists, a job's timeline.

Plain values built from job rows, so templates never query or decode anything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import ExpressionWrapper, F, Model, TextField

from . import display
from .callables import job_rules
from .fields import JobJSONField
from .models import Job, JobQuerySet
from .states import Event as Signal
from .states import Progress, Status

JSON_FIELDS = ("args", "kwargs", "meta", "result")
ARGUMENT_FIELDS = ("args", "kwargs")


# -- what the templates show ------------------------------------------------------------


@dataclass(frozen=True)
class ProgressBar:
    """A running job's progress, with the time it has run and an estimate of what is left."""

    current: int | None
    total: int | None
    percent: float | None
    message: str
    elapsed: timedelta | None
    eta: timedelta | None
    cancel_requested: bool

    @classmethod
    def build(cls, job: Job, progress: Progress, now: datetime) -> ProgressBar:
        elapsed = max(now - job.started_at, timedelta(0)) if job.started_at else None
        current, total = progress.current, progress.total
        eta = None
        if elapsed is not None and current and total is not None and total >= current:
            eta = elapsed * (total - current) / current
        cancel_requested = bool(getattr(progress, "cancel_requested", False))
        return cls(
            current,
            total,
            progress.percent,
            display.show_line(progress.message, 300),
            elapsed,
            eta,
            cancel_requested or job.cancel_requested_at is not None,
        )


@dataclass
class JobRow:
    """One job as the list and the live panel show it."""

    job: Job
    call: str
    actions: frozenset[str]
    bar: ProgressBar | None = None
    poll: str = ""  # the hx-trigger of an unfinished job's fragment
    notice: tuple[str, str] | None = None  # (level, text) after an htmx action

    @property
    def error(self) -> str:
        """The latest failure (redacted, one line's worth), unless the job has succeeded since."""
        return "" if self.job.is_succeeded else display.show_line(self.job.last_error, 160)


@dataclass
class LockEntry:
    key: str
    label: str = ""
    url: str = ""


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    title: str
    detail: str = ""
    worker: str = ""


ARGUMENT_TEXT = 65_536  # longer args or kwargs are not decoded by lists and polled fragments


def with_argument_text(jobs: JobQuerySet, keep: tuple[str, ...] = ()) -> JobQuerySet:
    """``jobs`` without their JSON columns (but ``keep``); args and kwargs as undecoded text.

    A list row shows a one-line call summary; decoding a forged 16 MB argument
    for it would cost seconds on every list page and every poll. The text is the
    column itself (no SQL function, which SQLite would compute for every row it
    sorts), decoded only when short.
    """
    annotations = {
        f"{name}_text": ExpressionWrapper(F(name), output_field=TextField())
        for name in ARGUMENT_FIELDS
    }
    deferred = [name for name in JSON_FIELDS if name not in keep]
    return jobs.defer(*deferred).annotate(**annotations)


def argument(job: Job, name: str) -> Any:
    """``job.args`` or ``job.kwargs``; from its undecoded text if that was loaded instead."""
    if not hasattr(job, f"{name}_text"):
        return getattr(job, name)
    text = getattr(job, f"{name}_text")
    if text is None:
        return None
    if len(text) > ARGUMENT_TEXT:
        return display.Omitted(f"[{len(text):,} characters of {name}: see the job's page]")
    return cast(JobJSONField, Job._meta.get_field(name)).from_db_value(text, None, None)


def call_summary(job: Job, limit: int = 120) -> str:
    """``fn(1, "a", key=value)`` with secrets redacted, cut to ``limit`` characters."""
    return display.call_summary(job.name, argument(job, "args"), argument(job, "kwargs"), limit)


def safe_url(url: str) -> str:
    """``url`` if a link to it cannot run script (no ``javascript:``), else ``""``."""
    return url if url.startswith(("/", "http://", "https://")) else ""


def describe_locks(keys: list[str]) -> list[LockEntry]:
    """Entries for lock keys, linking objects that exist to their page (one query per model)."""
    entries = [LockEntry(key) for key in keys]
    wanted: dict[type[Model], dict[Any, list[LockEntry]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        label, sep, raw_pk = entry.key.partition(":")
        if not sep or label.count(".") != 1:
            continue
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        if raw_pk == "*":
            entry.label = f"all {model._meta.verbose_name_plural}"
            continue
        try:
            pk = model._meta.pk.to_python(raw_pk)
        except ValidationError:
            continue
        wanted[model][pk].append(entry)
    for model, by_pk in wanted.items():
        for pk, instance in model._default_manager.in_bulk(list(by_pk)).items():
            url = instance.get_absolute_url() if hasattr(instance, "get_absolute_url") else ""
            for entry in by_pk.get(pk, ()):
                entry.label = str(instance)
                entry.url = safe_url(str(url))
    return entries


def timeline(job: Job, errors: list) -> list[Event]:
    """The job's events, oldest first, derived from its row and its error rows."""
    events = [Event(job.created_at, Signal.SCHEDULED, "Scheduled", f"queue {job.queue}")]
    if not job.is_finished and job.run_after and job.run_after > job.created_at:
        title = "Next attempt due" if job.attempts else "Due"
        events.append(Event(job.run_after, "due", title))
    for error in errors:
        detail = display.show_line(f"{error.exception[:300]}: {error.message[:400]}", 300)
        events.append(
            Event(
                error.created_at,
                Status.FAILED,
                f"Attempt {error.attempt} failed",
                detail,
                error.worker,
            )
        )
    if job.started_at:
        events.append(
            Event(
                job.started_at, Signal.STARTED, f"Attempt {job.attempts} started", worker=job.worker
            )
        )
    if job.cancel_requested_at:
        events.append(Event(job.cancel_requested_at, "cancel-requested", "Cancellation requested"))
    events.sort(key=lambda event: event.at)
    if job.finished_at and job.is_finished:
        # Last whatever the clocks say: the error row of the final attempt is written
        # a moment after the job's finished_at.
        events.append(Event(job.finished_at, job.status, job.get_status_display()))
    return events


def describe_policy(job: Job) -> list[tuple[str, str]]:
    """The failure policy that applies to ``job``, as (label, value) lines for its page."""
    rules = job_rules(job.name, job.policy)
    lines = [("Attempts", f"{job.attempts} of {job.max_attempts}")]
    if job.snoozes:
        lines.append(("Snoozed", f"{job.snoozes} times"))
    lines += rules.describe()
    if job.policy:
        lines.append(("Set by", "schedule() (over the job's declaration)"))
    return lines
