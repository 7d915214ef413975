"""The dashboard's schedules: the list, a form to make or edit one, enable/disable, run now.

Seeing them needs staff status (as seeing every job does) or ``async_queue.view_schedule``
(``change_schedule`` implies it): a schedule's arguments are anyone's, not one user's.
Making one needs ``async_queue.add_schedule``; editing, enabling, disabling and running
one now need ``async_queue.change_schedule``. Actions are POST with CSRF and return to
the list with a message. A schedule declared in code is shown read-only: it can be
enabled, disabled and run now, and is edited where it is declared.

Every page works without JavaScript (links and forms).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from . import crontime, display, permissions
from .exceptions import ScheduleError
from .models import Schedule, ScheduleSource
from .periodic import Periodic, all_periodic, run_now
from .schedule_forms import ScheduleForm

VIEW_PERMISSION = "async_queue.view_schedule"
ADD_PERMISSION = "async_queue.add_schedule"
CHANGE_PERMISSION = "async_queue.change_schedule"


def may_view(user: permissions.User) -> bool:
    # Every user model the auth backends serve has has_perm; the stubs' AbstractBaseUser not.
    has_perm = user.has_perm  # type: ignore[union-attr]
    return (
        permissions.sees_all_jobs(user) or has_perm(VIEW_PERMISSION) or has_perm(CHANGE_PERMISSION)
    )


def shown_time(value: datetime | None, zone_key: str) -> tuple[str, str]:
    """``value`` on the schedule's wall clock (with the zone's abbreviation), and as ISO."""
    if value is None:
        return "", ""
    try:
        local = value.astimezone(crontime.zone(zone_key))
    except ScheduleError:
        local = value
    return local.strftime("%Y-%m-%d %H:%M:%S %Z"), value.isoformat()


@dataclass
class ScheduleRow:
    """One schedule as the list shows it."""

    pk: int | None  # None: declared in code, not yet copied into a row by a worker
    name: str
    source: str
    source_label: str
    call: str
    timing: str
    timezone: str
    enabled: bool
    declared: bool  # False: a code schedule's row whose code is gone
    last: tuple[str, str]
    next: tuple[str, str]
    can_edit: bool = False
    can_change: bool = False

    @classmethod
    def from_row(cls, row: Schedule, declared: bool, can_change: bool) -> ScheduleRow:
        return cls(
            row.pk,
            row.name,
            row.source,
            row.get_source_display(),
            call_text(row.function, row.args, row.kwargs),
            row.timing,
            row.timezone,
            row.enabled,
            declared,
            shown_time(row.last_tick_at, row.timezone),
            shown_time(row.next_tick_at if row.enabled else None, row.timezone),
            can_edit=can_change and not row.is_code,
            can_change=can_change,
        )

    @classmethod
    def from_code(cls, entry: Periodic, now: datetime) -> ScheduleRow:
        timing = entry.cron or f"every {entry.interval:g} s"
        return cls(
            None,
            entry.name,
            entry.source,
            ScheduleSource(entry.source).label,
            call_text(entry.function, entry.args, entry.kwargs),
            timing,
            entry.timezone,
            True,
            True,
            ("", ""),
            shown_time(entry.next_tick(now), entry.timezone),
        )


def call_text(function: str, args: Any, kwargs: Any) -> str:
    """``function(args, kwargs)`` in one line, redacted and cut (``display``)."""
    parts = [display.show_json(args, indent=None, limit=300)]
    parts.append(display.show_json(kwargs, indent=None, limit=300))
    return f"{function}({', '.join(parts)})"


class ScheduleMixin(LoginRequiredMixin):
    """Signed-in users only, and of those who may see schedules (``may_view``)."""

    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated and not may_view(request.user):
            raise PermissionDenied(
                "You may not see schedules: that needs staff status or the "
                "async_queue.view_schedule permission."
            )
        return super().dispatch(request, *args, **kwargs)

    def require(self, permission: str, verb: str) -> None:
        if not self.request.user.has_perm(permission):
            raise PermissionDenied(f"You may not {verb} schedules ({permission} is needed).")

    def get_schedule(self, pk: int) -> Schedule:
        try:
            return Schedule.objects.get(pk=pk)
        except Schedule.DoesNotExist:
            raise Http404("No such schedule.") from None

    @staticmethod
    def list_url() -> str:
        return reverse("async_queue:schedule-list")


class ScheduleListView(ScheduleMixin, View):
    """Every schedule, the database's and the code's, with its last and next run."""

    template_name = "async_queue/schedule_list.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        can_change = request.user.has_perm(CHANGE_PERMISSION)
        code = {entry.name: entry for entry in all_periodic()}
        stored = list(Schedule.objects.all())
        rows = [
            ScheduleRow.from_row(row, not row.is_code or row.name in code, can_change)
            for row in stored
        ]
        shown = {row.name for row in stored}
        now = datetime.now().astimezone()
        rows += [ScheduleRow.from_code(e, now) for e in code.values() if e.name not in shown]
        rows.sort(key=lambda row: row.name)
        context = {
            "rows": rows,
            "can_add": request.user.has_perm(ADD_PERMISSION),
            "list_url": reverse("async_queue:job-list"),
        }
        return render(request, self.template_name, context)


class ScheduleFormView(ScheduleMixin, View):
    """Make a database schedule (no ``pk``) or edit one."""

    template_name = "async_queue/schedule_form.html"

    def get(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        schedule = self.editable(pk)
        return self.show(ScheduleForm(instance=schedule), schedule)

    def post(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        schedule = self.editable(pk)
        form = ScheduleForm(request.POST, instance=schedule)
        if not form.is_valid():
            return self.show(form, schedule, status=400)
        saved = form.save()
        verb = "saved" if schedule is not None else "created"
        messages.success(request, f"Schedule {saved.name!r} was {verb}.")
        return HttpResponseRedirect(self.list_url())

    def editable(self, pk: int | None) -> Schedule | None:
        """The schedule to edit (None: a new one), if the user may; else 403/404."""
        if pk is None:
            self.require(ADD_PERMISSION, "add")
            return None
        self.require(CHANGE_PERMISSION, "change")
        schedule = self.get_schedule(pk)
        if schedule.is_code:
            raise PermissionDenied(
                f"Schedule {schedule.name!r} is declared in code "
                f"({schedule.get_source_display()}); change it there. Here it can only be "
                "enabled, disabled or run now."
            )
        return schedule

    def show(
        self, form: ScheduleForm, schedule: Schedule | None, status: int = 200
    ) -> HttpResponse:
        context = {
            "form": form,
            "schedule": schedule,
            "list_url": reverse("async_queue:job-list"),
            "schedules_url": self.list_url(),
        }
        return render(self.request, self.template_name, context, status=status)


class ScheduleActionView(ScheduleMixin, View, metaclass=abc.ABCMeta):
    """POST only: do one thing to a schedule, then return to the list with a message."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        self.require(CHANGE_PERMISSION, "change")
        schedule = self.get_schedule(pk)
        try:
            level, text = messages.SUCCESS, self.perform(schedule)
        except ScheduleError as exc:
            level, text = messages.ERROR, f"Schedule {schedule.name!r}: {exc}"
        messages.add_message(request, level, text)
        return HttpResponseRedirect(self.list_url())

    @abc.abstractmethod
    def perform(self, schedule: Schedule) -> str:
        """Do the action; return the message to show. Raises ``ScheduleError``."""


class EnableScheduleView(ScheduleActionView):
    enabled = True

    def perform(self, schedule: Schedule) -> str:
        schedule.enabled = self.enabled
        schedule.save(update_fields=["enabled", "updated_at"])
        if not self.enabled:
            return f"Schedule {schedule.name!r} was disabled."
        upcoming, _ = shown_time(schedule.next_tick_at, schedule.timezone)
        return f"Schedule {schedule.name!r} was enabled" + (
            f"; its next run is at {upcoming}." if upcoming else "."
        )


class DisableScheduleView(EnableScheduleView):
    enabled = False


class RunScheduleView(ScheduleActionView):
    def perform(self, schedule: Schedule) -> str:
        job = run_now(schedule, user=self.request.user)
        return f"Schedule {schedule.name!r}: job {job.pk} was queued to run now."
