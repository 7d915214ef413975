"""Read-only admin for jobs and their errors, with retry and cancel actions.

A job's JSON (args, kwargs, meta, result) is shown as the dashboard shows it: values
under secret-looking keys redacted (``permissions.redact``), and escaped.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .exceptions import InvalidJobState
from .models import Job, JobError
from .permissions import redact

JSON_FIELDS = ("args", "kwargs", "meta", "result")


def redacted_json(value: Any) -> SafeString:
    text = json.dumps(redact(value), indent=2, cls=DjangoJSONEncoder, ensure_ascii=False)
    return format_html("<pre>{}</pre>", text)


class JobErrorInline(admin.TabularInline):
    model = JobError
    extra = 0
    can_delete = False
    fields = ["attempt", "created_at", "worker", "exception", "message", "traceback"]
    readonly_fields = fields

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


@admin.action(description="Retry selected failed jobs", permissions=["change"])
def retry_jobs(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Job]) -> None:
    _apply(modeladmin, request, queryset.failed(), "retry", "Requeued")


@admin.action(description="Cancel selected queued jobs", permissions=["change"])
def cancel_jobs(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Job]
) -> None:
    _apply(modeladmin, request, queryset.queued(), "cancel", "Cancelled")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
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
    exclude = JSON_FIELDS  # shown redacted by the methods below instead

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [field.name for field in Job._meta.fields if field.name not in JSON_FIELDS]
        return [*fields, *(f"{name}_redacted" for name in JSON_FIELDS)]

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
class JobErrorAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "attempt", "exception", "created_at", "worker"]
    list_filter = ["exception"]
    search_fields = ["=job__id", "exception", "message"]
    list_select_related = ["job"]
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in JobError._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
