"""What the bulk templates show, and how the bulk endpoints answer.

The view models: ``BulkContext`` is the ``bulk`` variable of the list and of every
bulk template (``{"bulk": None}`` when bulk is off), ``BulkRow`` one row's checkbox
(``{% bulk_row object bulk as row %}``); the conflict list's ``BusyObject`` and
``BlockingJob`` live in ``powercrud.conflicts``.

``BulkResponses`` (a base of ``BulkMixin``) builds that context (with the list's query,
for "select all matching", and where plain requests return) and renders the answers.
It also decides whether a request wants a fragment (``async_queue.wants_fragment``,
the rule every powercrud and dashboard page follows): an htmx request gets a fragment
for the list's modal (``bulk_modal_target``) and ``HX-Trigger`` events
(``powercrud:changed`` refreshes the table and flashes its message;
``powercrud:close-modal`` after a synchronous success); a plain request is redirected
back to the list with a message, or gets a full page (``powercrud/bulk/page.html``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from async_queue import htmx_details, hx_trigger, job_url, wants_fragment

from .async_manager import AsyncManager, JobStatus
from .conflicts import BusyObject

if TYPE_CHECKING:
    from async_queue import Conflict, Job

    from .selection import Selection

CHANGED_EVENT = "powercrud:changed"  # the list refreshes its table (and flashes the message)
CLOSE_MODAL_EVENT = "powercrud:close-modal"
# The progress modal's title by action: while it runs, done, failed, cancelled.
PROGRESS_TITLES = {
    "edit": ("Updating {}", "Updated {}", "Could not update {}", "Update of {} cancelled"),
    "delete": ("Deleting {}", "Deleted {}", "Could not delete {}", "Deletion of {} cancelled"),
}


def digest(text: str, size: int = 6) -> str:
    """A short, stable, HTML-id-safe digest of ``text``."""
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


@dataclass(frozen=True)
class BulkRow:
    """One row's checkbox: its canonical pk, element id, state and htmx values."""

    pk: str
    id: str
    checked: bool
    vals: str


@dataclass
class BulkContext:
    """The ``bulk`` variable of the list and of every bulk template."""

    enabled: bool
    prefix: str  # unique per view and model: the bulk elements' ids start with it
    selected: frozenset[str]
    limit: int
    select_url: str
    edit_url: str
    delete_url: str
    can_edit: bool
    can_delete: bool
    query: str  # the list's GET parameters, for "select all matching"
    next: str  # where plain (non-htmx) requests return
    modal_target: str
    verbose_name: str
    verbose_name_plural: str
    notice: tuple[str, str] | None = None  # (level, text): "success" or "error"

    @property
    def count(self) -> int:
        return len(self.selected)

    @property
    def toolbar_id(self) -> str:
        return f"{self.prefix}-toolbar"

    def row(self, obj: models.Model) -> BulkRow:
        pk = str(obj.pk)
        return BulkRow(
            pk=pk,
            id=f"{self.prefix}-row-{digest(pk)}",
            checked=pk in self.selected,
            vals=json.dumps({"action": "toggle", "toggle": pk}),
        )


class BulkResponses:
    """The context of the bulk templates and the bulk endpoints' responses."""

    bulk_fields: list[str]
    bulk_modal_target: str
    bulk_poll_trigger: str
    bulk_conflicts_shown: int
    model: type[models.Model]
    request: HttpRequest
    url_base: str

    if TYPE_CHECKING:

        @property
        def bulk_enabled(self) -> bool: ...

        def get_bulk_selection(self) -> Selection: ...

        def bulk_url(self, role_name: str, **kwargs: Any) -> str: ...

        def has_bulk_permission(self, action: str) -> bool: ...

        def can_bulk_delete(self) -> bool: ...

        def is_bulk_request(self) -> bool: ...

        def bulk_objects(self, pks: list[str]) -> dict[str, models.Model]: ...

        def get_async_manager(self) -> AsyncManager: ...

    def get_bulk_list_query(self) -> QueryDict:
        """The list's GET parameters: this GET's on the list, else posted, else htmx's URL."""
        if not self.is_bulk_request():
            query = self.request.GET.copy()
        elif self.request.method == "POST" and "query" in self.request.POST:
            query = QueryDict(self.request.POST["query"], mutable=True)
        else:
            query = QueryDict(
                urlsplit(htmx_details(self.request).current_url or "").query, mutable=True
            )
        query.pop("page", None)
        return query

    def get_bulk_next_url(self) -> str:
        """Where plain bulk requests return: this list page, the posted ``next``, or the list."""
        if not self.is_bulk_request():
            candidate = self.request.get_full_path()
        elif self.request.method == "POST" and self.request.POST.get("next"):
            candidate = self.request.POST["next"]
        else:
            candidate = htmx_details(self.request).current_url_abs_path or ""
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={self.request.get_host()}, require_https=False
        ):
            return candidate
        try:
            return reverse(f"{self.url_base}-list")
        except NoReverseMatch:
            return "/"

    def is_bulk_fragment(self) -> bool:
        """An htmx request for a piece of the page (not a boosted link, not a history restore)."""
        return wants_fragment(self.request)

    def get_bulk_context(self, notice: tuple[str, str] | None = None) -> dict[str, Any]:
        """``{"bulk": BulkContext}`` for the list and the bulk templates (no queries)."""
        if not self.bulk_fields:
            return {"bulk": None}
        selection = self.get_bulk_selection()
        opts = self.model._meta
        return {
            "bulk": BulkContext(
                enabled=self.bulk_enabled,
                prefix=f"pc-bulk-{digest(selection.key, 4)}",
                selected=selection.as_set(),
                limit=selection.limit,
                select_url=self.bulk_url("SELECT"),
                edit_url=self.bulk_url("BULK_EDIT"),
                delete_url=self.bulk_url("BULK_DELETE"),
                can_edit=self.has_bulk_permission("change"),
                can_delete=self.can_bulk_delete(),
                query=self.get_bulk_list_query().urlencode(),
                next=self.get_bulk_next_url(),
                modal_target=self.bulk_modal_target,
                verbose_name=str(opts.verbose_name),
                verbose_name_plural=str(opts.verbose_name_plural),
                notice=notice,
            )
        }

    def bulk_success_message(self, action: str, result: Any) -> str:
        result = result if isinstance(result, dict) else {}

        def number(key: str) -> int:
            # A stored row may hold anything here; only a count is shown.
            value = result.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        plural = self.model._meta.verbose_name_plural
        if action == "delete":
            text = f"Deleted {number('deleted'):,} {plural}."
        else:
            text = f"Updated {number('updated'):,} {plural}."
        if number("missing"):
            text += f" {number('missing'):,} no longer existed."
        return text

    def render_bulk(
        self,
        template: str,
        status: int = 200,
        notice: tuple[str, str] | None = None,
        toolbar: bool = False,
        **context: Any,
    ) -> HttpResponse:
        """``template`` as an htmx fragment (with the toolbar out of band if ``toolbar``),
        or as a full page for a plain request (``powercrud/bulk/page.html``)."""
        context = {**self.get_bulk_context(notice), "view": self, **context}
        if self.is_bulk_fragment():
            context["in_modal"] = True
            html = render_to_string(template, context, request=self.request)
            if toolbar:
                html += render_to_string(
                    "powercrud/bulk/selection.html", {**context, "oob": True}, request=self.request
                )
        else:
            context["content_template"] = template
            html = render_to_string("powercrud/bulk/page.html", context, request=self.request)
        return HttpResponse(html, status=status)

    def bulk_selection_response(
        self, affected: list[str], notice: tuple[str, str] | None, status: int
    ) -> HttpResponse:
        """The toolbar, and the affected rows' checkboxes out of band; plain: back to the list."""
        if not self.is_bulk_fragment():
            self.bulk_message(notice)
            return HttpResponseRedirect(self.get_bulk_next_url())
        context = {**self.get_bulk_context(notice), "view": self}
        html = render_to_string("powercrud/bulk/selection.html", context, request=self.request)
        objects = self.bulk_objects(affected) if affected else {}
        for pk in affected:
            if pk in objects:
                html += render_to_string(
                    "powercrud/bulk/row_checkbox.html",
                    {**context, "object": objects[pk], "oob": True},
                    request=self.request,
                )
        return HttpResponse(html, status=status)

    def bulk_nothing_selected(self) -> HttpResponse:
        notice = ("error", "Nothing is selected: select some rows first.")
        if not self.is_bulk_fragment():
            self.bulk_message(notice)
            return HttpResponseRedirect(self.get_bulk_next_url())
        return self.render_bulk(
            "powercrud/bulk/message.html", status=422, notice=notice, toolbar=True
        )

    def bulk_conflict_response(
        self, conflicts: list[BusyObject], count: int, exc: Conflict | None = None
    ) -> HttpResponse:
        """HTTP 409: which selected objects are busy, and the jobs that hold them."""
        return self.render_bulk(
            "powercrud/bulk/conflict.html",
            status=409,
            conflicts=conflicts[: self.bulk_conflicts_shown],
            more=max(0, len(conflicts) - self.bulk_conflicts_shown),
            busy_count=len(conflicts),
            count=count,
            locked_elsewhere=exc is not None and not conflicts,
            blocking_jobs=[] if conflicts or exc is None else exc.jobs,
        )

    def bulk_progress_title(self, action: str, job_status: JobStatus, count: int | None) -> str:
        """The progress modal's title: what the job does, then how it ended."""
        opts = self.model._meta
        what = str(opts.verbose_name if count == 1 else opts.verbose_name_plural)
        if count is not None:
            what = f"{count:,} {what}"
        running, succeeded, failed, cancelled = PROGRESS_TITLES.get(action, PROGRESS_TITLES["edit"])
        if job_status.succeeded:
            return succeeded.format(what)
        if job_status.failed:
            return failed.format(what)
        if job_status.cancelled:
            return cancelled.format(what)
        return running.format(what)

    def bulk_progress_context(self, job: Job, job_status: JobStatus, action: str) -> dict[str, Any]:
        count = self.get_async_manager().describe(job).get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            count = None
        return {
            "job": job,
            "count": "" if count is None else count,
            "title": self.bulk_progress_title(action, job_status, count),
            "job_status": job_status,
            "action": action,
            "status_url": self.bulk_url("BULK_STATUS", job_pk=job.pk),
            "dashboard_url": job_url(job, self.request.user) or "",
            "poll_trigger": self.bulk_poll_trigger,
            "done_message": (
                self.bulk_success_message(action, job.result) if job_status.succeeded else ""
            ),
        }

    def bulk_scheduled_response(self, job: Job, action: str) -> HttpResponse:
        """The progress modal of a job just scheduled (a plain POST goes to its page)."""
        context = self.bulk_progress_context(job, self.get_async_manager().status(job), action)
        if not self.is_bulk_fragment():
            return HttpResponseRedirect(context["status_url"])
        return self.render_bulk("powercrud/bulk/progress.html", status=202, **context)

    def bulk_done_response(self, text: str) -> HttpResponse:
        """After a synchronous success: close the modal and refresh the table (204)."""
        if not self.is_bulk_fragment():
            self.bulk_message(("success", text))
            return HttpResponseRedirect(self.get_bulk_next_url())
        response = HttpResponse(status=204)
        return self.bulk_trigger(
            response, {CHANGED_EVENT: {"message": text}, CLOSE_MODAL_EVENT: {}}
        )

    def bulk_trigger(self, response: HttpResponse, events: dict[str, Any]) -> HttpResponse:
        """Send ``events`` (name -> details) to the page with the response (``HX-Trigger``)."""
        return hx_trigger(response, events)

    def bulk_message(self, notice: tuple[str, str] | None) -> None:
        if notice is not None:
            level = messages.ERROR if notice[0] == "error" else messages.SUCCESS
            messages.add_message(self.request, level, notice[1], fail_silently=True)


__all__ = [
    "CHANGED_EVENT",
    "CLOSE_MODAL_EVENT",
    "BulkContext",
    "BulkResponses",
    "BulkRow",
    "digest",
]
