"""Periodic schedules stored in the database, and the code's schedules mirrored beside them.

A ``database`` schedule is made and edited in the admin or the dashboard. A
``settings`` or ``decorator`` schedule is declared in code (``ASYNC_QUEUE["PERIODIC"]``,
``@periodic``); workers copy it into a row so that the same pages show it. The code
stays its source of truth: its row is read-only there, except ``enabled``, which
only the database holds.

``clean()`` checks what the row can check alone (cron, time zone, cron for a
database schedule); ``async_queue.schedule_forms.ScheduleForm``, which the admin
and the dashboard use, adds the checks that need the job registry (a declared
function, storable arguments, a name the code does not use).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models.functions import Now
from django.utils import timezone

from .. import crontime
from ..exceptions import ScheduleError
from ..fields import JobJSONField
from .records import PeriodicTick

# The ticks of a database schedule are recorded as "schedule:<pk>": a rename keeps
# them, and no code schedule may take such a name (``periodic.Periodic`` refuses it).
TICK_PREFIX = "schedule:"
# Fields whose change makes the schedule start afresh (see ``Schedule.save``).
TIMING_FIELDS = ("cron", "interval", "timezone", "enabled")


class ScheduleSource(models.TextChoices):
    DATABASE = "database", "Database"
    SETTINGS = "settings", "ASYNC_QUEUE['PERIODIC']"
    DECORATOR = "decorator", "@periodic"


class Schedule(models.Model):
    """A periodic job: a declared function run at each tick of a cron expression in a zone."""

    name = models.CharField(max_length=150, unique=True)
    function = models.CharField(
        max_length=255, help_text="Dotted path of a declared job, e.g. 'reports.tasks.nightly'."
    )
    args = JobJSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    kwargs = JobJSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    cron = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Minute hour day month weekday, e.g. '30 2 * * *'; a sixth field in front "
        "counts seconds.",
    )
    interval = models.FloatField(
        null=True, blank=True, help_text="Seconds between ticks (code schedules only)."
    )
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="The zone whose wall clock the cron reads."
    )
    queue = models.CharField(
        max_length=100, blank=True, default="", help_text="Empty: the job's declared queue."
    )
    priority = models.IntegerField(
        null=True, blank=True, help_text="Empty: the job's declared priority."
    )
    enabled = models.BooleanField(default=True)
    source = models.CharField(
        max_length=10,
        choices=ScheduleSource.choices,
        default=ScheduleSource.DATABASE,
        editable=False,
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    last_tick_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="The latest tick a job was scheduled for."
    )
    next_tick_at = models.DateTimeField(null=True, blank=True, editable=False)
    since = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When it was made, enabled or retimed: the ticks after this run.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save; a new schedule, or a change of timing or ``enabled``, starts afresh.

        ``since`` becomes now (this process's clock) and the ticks recorded before
        are forgotten: the first tick after ``since`` is the first to run, however
        late a worker sees the change, and none before it does (re-enabling a
        schedule, or moving ``0 3 * * *`` to ``0 15 * * *`` at 15:30, runs nothing
        at once).
        """
        using = kwargs.get("using") or self._state.db or "default"
        update_fields = kwargs.get("update_fields")
        with transaction.atomic(using=using):
            fresh = self._state.adding or self.pk is None
            if not fresh:
                before = (
                    Schedule.objects.using(using).filter(pk=self.pk).values(*TIMING_FIELDS).first()
                )
                fresh = before is not None and any(
                    before[field] != getattr(self, field) for field in TIMING_FIELDS
                )
                if fresh:
                    PeriodicTick.objects.using(using).filter(name=self.tick_name).delete()
            # A code schedule's new row keeps the code's rule (its first sighting only
            # records its latest tick) until it is disabled and enabled again.
            if fresh and not (self._state.adding and self.is_code):
                self.since = timezone.now()
            if not self.enabled or self.cron:
                self.next_tick_at = self.following_tick()
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "next_tick_at", "since"}
            super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        """Delete, with the ticks of a database schedule (a code schedule's stay: the code
        declares them still or again)."""
        using = kwargs.get("using") or self._state.db or "default"
        with transaction.atomic(using=using):
            if not self.is_code:
                PeriodicTick.objects.using(using).filter(name=self.tick_name).delete()
            return super().delete(*args, **kwargs)

    @property
    def is_code(self) -> bool:
        """Declared in settings or with ``@periodic``: read-only but for ``enabled``."""
        return self.source != ScheduleSource.DATABASE

    @property
    def tick_name(self) -> str:
        """The ``PeriodicTick.name`` of its ticks."""
        return self.name if self.is_code else f"{TICK_PREFIX}{self.pk}"

    @property
    def timing(self) -> str:
        if self.interval is not None:
            return f"every {self.interval:g} s"
        return self.cron

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not self.is_code and (self.interval is not None or not self.cron):
            errors["cron"] = "A cron expression is needed, such as '0 3 * * *'."
        if self.cron:
            try:
                crontime.check(self.cron)
            except ScheduleError as exc:
                errors["cron"] = str(exc)
        try:
            crontime.zone(self.timezone)
        except ScheduleError as exc:
            errors["timezone"] = str(exc)
        if errors:
            raise ValidationError(errors)

    def following_tick(self, now: datetime | None = None) -> datetime | None:
        """The next tick after ``now`` (default: this clock) of an enabled cron schedule."""
        if not self.enabled or not self.cron:
            return None
        try:
            return crontime.following(
                self.cron, crontime.zone(self.timezone), now or timezone.now()
            )
        except ScheduleError:
            return None
