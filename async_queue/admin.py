"""Read-only admin for jobs and their errors, with retry and cancel actions; schedules;
pauses.

A job's JSON (args, kwargs, meta, result), its last error and its errors' messages and
tracebacks are shown as the dashboard shows them (``display``): credentials redacted,
cut to ``SHOW_MAX_BYTES``, escaped; any stored row renders, however deep or big.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .display import show_json, show_text
from .exceptions import InvalidJobState, ScheduleError
from .models import Job, JobError, JobQuerySet, Pause, PauseKind, Schedule
from .pausing import job_name, queue_name
from .periodic import all_periodic, run_now
from .schedule_forms import ScheduleForm

JSON_FIELDS = ("args", "kwargs", "meta", "result")
TEXT_FIELDS = ("last_error",)
ERROR_TEXT_FIELDS = ("message", "traceback")
ERROR_FIELDS = (
    "attempt",
    "created_at",
    "worker",
    "exception",
    *(f"{name}_redacted" for name in ERROR_TEXT_FIELDS),
)


def redacted_json(value: Any) -> SafeString:
    return format_html("<pre>{}</pre>", show_json(value))


def redacted_text(value: str) -> SafeString | str:
    return format_html("<pre>{}</pre>", show_text(value)) if value else ""


class ReadOnlyPages(admin.ModelAdmin):
    """An object's page changes nothing, so it is a view page: no Save buttons (a Close
    link instead), and a post is refused.

    Change permission still counts on the changelist (``obj`` None): the actions that
    need it (retry, cancel) stay offered.
    """

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request)


class ShownErrorText:
    """An error's message and traceback, redacted and cut (``display.show_text``)."""

    @admin.display(description="message")
    def message_redacted(self, error: JobError) -> SafeString | str:
        return redacted_text(error.message)

    @admin.display(description="traceback")
    def traceback_redacted(self, error: JobError) -> SafeString | str:
        return redacted_text(error.traceback)


class JobErrorInline(ShownErrorText, admin.TabularInline):
    model = JobError
    extra = 0
    can_delete = False
    fields = ERROR_FIELDS
    readonly_fields = ERROR_FIELDS

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _apply(
    modeladmin: admin.ModelAdmin, request: HttpRequest, jobs: QuerySet[Job], method: str, verb: str
) -> None:
    done = skipped = 0
    for job in jobs:
        try:
            getattr(job, method)()
        except InvalidJobState:
            skipped += 1
        else:
            done += 1
    modeladmin.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS)
    if skipped:
        modeladmin.message_user(
            request, f"Skipped {skipped} job(s) not in a state that allows it.", messages.WARNING
        )


def _jobs(queryset: QuerySet[Job]) -> JobQuerySet:
    # The admin passes its actions a QuerySet; Job's is always a JobQuerySet.
    return cast(JobQuerySet, queryset)


@admin.action(description="Retry selected failed jobs", permissions=["change"])
def retry_jobs(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Job]) -> None:
    _apply(modeladmin, request, _jobs(queryset).failed(), "retry", "Requeued")


@admin.action(description="Cancel selected queued jobs", permissions=["change"])
def cancel_jobs(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Job]
) -> None:
    _apply(modeladmin, request, _jobs(queryset).queued(), "cancel", "Cancelled")


class JobChangeList(ChangeList):
    """The job changelist loads no JSON and no error text: it shows neither.

    A forged row can hold megabytes in them; decoding those for every row of a
    changelist page would take seconds.
    """

    def get_queryset(self, request: HttpRequest, *args: Any, **kwargs: Any) -> QuerySet[Job]:
        return super().get_queryset(request, *args, **kwargs).defer(*JSON_FIELDS, *TEXT_FIELDS)


@admin.register(Job)
class JobAdmin(ReadOnlyPages):
    list_display = [
        "id",
        "name",
        "queue",
        "status",
        "priority",
        "attempts",
        "run_after",
        "finished_at",
        "user",
    ]
    list_filter = ["status", "queue", "name"]
    search_fields = ["=id", "name", "last_error"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]
    actions = [retry_jobs, cancel_jobs]
    inlines = [JobErrorInline]
    show_full_result_count = False
    exclude = (*JSON_FIELDS, *TEXT_FIELDS)  # shown redacted by the methods below instead

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        hidden = (*JSON_FIELDS, *TEXT_FIELDS)
        fields = [field.name for field in Job._meta.fields if field.name not in hidden]
        return [*fields, *(f"{name}_redacted" for name in (*TEXT_FIELDS, *JSON_FIELDS))]

    @admin.display(description="last error")
    def last_error_redacted(self, job: Job) -> SafeString | str:
        return redacted_text(job.last_error)

    @admin.display(description="args")
    def args_redacted(self, job: Job) -> SafeString:
        return redacted_json(job.args)

    @admin.display(description="kwargs")
    def kwargs_redacted(self, job: Job) -> SafeString:
        return redacted_json(job.kwargs)

    @admin.display(description="meta")
    def meta_redacted(self, job: Job) -> SafeString:
        return redacted_json(job.meta)

    @admin.display(description="result")
    def result_redacted(self, job: Job) -> SafeString:
        return redacted_json(job.result)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(JobError)
class JobErrorAdmin(ShownErrorText, ReadOnlyPages):
    list_display = ["id", "job", "attempt", "exception", "created_at", "worker"]
    list_filter = ["exception"]
    search_fields = ["=job__id", "exception", "message"]
    list_select_related = ["job"]
    show_full_result_count = False
    exclude = ERROR_TEXT_FIELDS  # shown redacted by the methods instead

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobError]:
        # Errors show their job by name only: none of its (possibly huge) JSON.
        big = (*JSON_FIELDS, *TEXT_FIELDS)
        return super().get_queryset(request).defer(*(f"job__{name}" for name in big))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [f.name for f in JobError._meta.fields if f.name not in ERROR_TEXT_FIELDS]
        return [*fields, *(f"{name}_redacted" for name in ERROR_TEXT_FIELDS)]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


# -- schedules ------------------------------------------------------------------------
#
# Database schedules are made and edited here through ScheduleForm (only declared jobs,
# storable arguments, a valid cron and zone). A schedule declared in code is read-only
# but for "enabled"; its row can be deleted only once the code no longer declares it.

CODE_OWNED = ("name", "function", "cron", "interval", "timezone", "queue", "priority")
SCHEDULE_SHOWN = ("source", "since", "last_tick_at", "next_tick_at", "created_at", "updated_at")


@admin.action(description="Run selected schedules now", permissions=["change"])
def run_schedules_now(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> None:
    for schedule in queryset:
        try:
            job = run_now(schedule, user=request.user)
        except ScheduleError as exc:
            modeladmin.message_user(request, f"{schedule.name}: {exc}", messages.ERROR)
        else:
            modeladmin.message_user(
                request, f"{schedule.name}: job {job.pk} queued to run now.", messages.SUCCESS
            )


def _set_enabled(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Schedule], on: bool
) -> None:
    changed = 0
    for schedule in queryset.filter(enabled=not on):
        schedule.enabled = on
        schedule.save(update_fields=["enabled", "updated_at"])  # starts afresh (Schedule.save)
        changed += 1
    verb = "Enabled" if on else "Disabled"
    modeladmin.message_user(request, f"{verb} {changed} schedule(s).", messages.SUCCESS)


@admin.action(description="Enable selected schedules", permissions=["change"])
def enable_schedules(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> None:
    _set_enabled(modeladmin, request, queryset, True)


@admin.action(description="Disable selected schedules", permissions=["change"])
def disable_schedules(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> None:
    _set_enabled(modeladmin, request, queryset, False)


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = [
        "name",
        "source",
        "function",
        "timing",
        "timezone",
        "enabled",
        "last_tick_at",
        "next_tick_at",
    ]
    list_filter = ["source", "enabled"]
    search_fields = ["name", "function"]
    actions = [run_schedules_now, enable_schedules, disable_schedules]

    def read_only(self, request: HttpRequest, obj: Schedule | None) -> bool:
        return obj is not None and (obj.is_code or not self.has_change_permission(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if self.read_only(request, obj):
            # Arguments shown redacted, as on a job's page; editors of a database
            # schedule see them as they are, in the form.
            return (*CODE_OWNED, "args_redacted", "kwargs_redacted", *SCHEDULE_SHOWN)
        return SCHEDULE_SHOWN

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if self.read_only(request, obj):
            return (*CODE_OWNED, "args_redacted", "kwargs_redacted", "enabled", *SCHEDULE_SHOWN)
        return (*ScheduleForm.Meta.fields, *SCHEDULE_SHOWN)

    @admin.display(description="args")
    def args_redacted(self, schedule: Schedule) -> SafeString:
        return redacted_json(schedule.args)

    @admin.display(description="kwargs")
    def kwargs_redacted(self, schedule: Schedule) -> SafeString:
        return redacted_json(schedule.kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_code and obj.name in {e.name for e in all_periodic()}:
            return False  # the next worker would write it again
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            schedule.delete()  # with its ticks (Schedule.delete)


class PauseForm(forms.ModelForm):
    """A new pause: a queue name, or the dotted name of a declared job (as ``pausing`` checks)."""

    class Meta:
        model = Pause
        fields = ["kind", "value", "reason"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, value = data.get("kind"), data.get("value")
        if kind and value and self.instance.pk is None:
            try:
                data["value"] = queue_name(value) if kind == PauseKind.QUEUE else job_name(value)
            except ValueError as exc:
                raise ValidationError({"value": str(exc)}) from exc
        return data


@admin.action(description="Resume selected queues and job names", permissions=["delete"])
def resume(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Pause]) -> None:
    # One DELETE: on PostgreSQL its trigger wakes the idle workers, as resume_queue() does.
    resumed, _ = queryset.delete()
    modeladmin.message_user(request, f"Resumed {resumed} paused queue(s) or job(s).")


@admin.register(Pause)
class PauseAdmin(admin.ModelAdmin):
    """Adding a pause pauses, deleting it resumes; only the reason can change."""

    form = PauseForm
    list_display = ["value", "kind", "paused_at", "paused_by", "reason"]
    list_filter = ["kind"]
    search_fields = ["value", "reason"]
    list_select_related = ["paused_by"]
    actions = [resume]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        changing = ["kind", "value"] if obj is not None else []
        return [*changing, "paused_at", "paused_by"]

    def save_model(self, request: HttpRequest, obj: Pause, form: Any, change: bool) -> None:
        if not change and request.user.is_authenticated:
            obj.paused_by_id = request.user.pk
        super().save_model(request, obj, form, change)
