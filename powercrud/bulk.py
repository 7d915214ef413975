"""Bulk selection and bulk edit/delete for PowerCRUDView (the ``BulkMixin``).

Contract with ``powercrud.views.PowerCRUDView``, which inherits this mixin:

- ``bulk_fields``: fields a bulk edit may set; empty means bulk operations are off.
- ``bulk_enabled`` (property): whether the list shows selection checkboxes and the
  bulk toolbar (``powercrud/bulk/toolbar.html`` above the table, and
  ``powercrud/bulk/row_checkbox.html`` per row, with the row as ``object``).
- ``get_bulk_urls()`` (classmethod): the URL patterns of the bulk endpoints
  (``PowerRole.SELECT``, ``BULK_EDIT``, ``BULK_DELETE``, ``BULK_STATUS``), which
  ``PowerCRUDView.get_urls()`` adds to neapolitan's.
- ``get_bulk_context()``: template context for the list: ``{"bulk": BulkContext}``.
- Modals are swapped into the list's ``#pc-modal-content`` (``bulk_modal_target``);
  a success sends the list's events: ``powercrud:changed`` (refresh the table, with
  a message) and, after a synchronous one, ``powercrud:close-modal``.

**Selection** is kept in the session per view and model (``powercrud.selection``):
toggle one row, toggle the rows of the page, select every row matching the list's
filter (its query string is posted along), clear. Each endpoint answers with the
toolbar and out-of-band updates of the affected row checkboxes.

**Bulk edit and delete** act on the selected rows of ``get_bulk_queryset()``, all
or nothing. Both refuse (HTTP 409, listing the busy objects and their jobs) when a
queued or running job declared any of them (``powercrud.conflicts``). Below
``bulk_async_threshold`` objects the job function runs in the request, in one
transaction inside ``async_queue.hold()``, so a job starting after the check
makes it fail with the same 409, never both writing. At or above it, the same
function is scheduled through the view's async manager, declaring every object in
``locks=``, inside the same kind of transaction (the job's row commits under the
objects' locks). A progress modal then polls ``bulk_status`` until the job ends
(HTTP 286) and refreshes the table when it succeeded. The selection is cleared
once an operation succeeded.

Every endpoint also works without JavaScript: a plain POST redirects back to the
list (with a message) or renders a full page.

The bulk edit form is in ``powercrud.bulk_forms``; the templates' view models and
the endpoints' responses in ``powercrud.presenters`` (``BulkResponses``, a base of
this mixin); the busy check in ``powercrud.conflicts``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_permission_codename
from django.core.exceptions import BadRequest, PermissionDenied
from django.db import models, router, transaction
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.urls import URLPattern, reverse
from django.utils.module_loading import import_string
from django_htmx.http import HTMX_STOP_POLLING

from async_queue import Conflict, ScheduleError, can_see, hold, holders, lock_key

from .async_manager import AsyncManager
from .bulk_forms import BulkEditForm, as_json
from .conflicts import BusyObject, blocking_jobs, busy_jobs
from .jobs import BulkError, BulkValidationError, ObjectError
from .presenters import CHANGED_EVENT, BulkContext, BulkResponses
from .selection import Selection, SelectionLimitExceeded, chunked

if TYPE_CHECKING:
    from django.forms import Form

    from async_queue import Job

logger = logging.getLogger("powercrud.bulk")


def job_pks(job: Job) -> list[Any]:
    """The pks a bulk job was given (none if its stored kwargs say otherwise)."""
    kwargs = job.kwargs if isinstance(job.kwargs, dict) else {}
    pks = kwargs.get("pks")
    return [pk for pk in pks if isinstance(pk, str | int)] if isinstance(pks, list) else []


class BulkMixin(BulkResponses):
    """Bulk selection, bulk edit and bulk delete for a neapolitan ``CRUDView``."""

    bulk_fields: list[str] = []
    #: Offer bulk delete (to users with the delete permission) when bulk is on.
    bulk_delete: bool = True
    #: This many objects or more are changed by a job; ``None``: never.
    bulk_async_threshold: int | None = 100
    #: The functions that do the work, in the request or in a worker (dotted paths).
    bulk_edit_job: str = "powercrud.jobs.bulk_edit"
    bulk_delete_job: str = "powercrud.jobs.bulk_delete"
    bulk_form_class: type[BulkEditForm] = BulkEditForm
    #: Where the bulk modals are swapped in (the list's modal).
    bulk_modal_target: str = "#pc-modal-content"
    bulk_poll_trigger: str = "every 1s"
    bulk_conflicts_shown: int = 50
    #: Which class schedules bulk jobs and reads them back, and its configuration.
    async_manager_class: type[AsyncManager] | str = AsyncManager
    async_manager_config: dict[str, Any] = {}

    # Provided by neapolitan's CRUDView.
    model: type[models.Model]
    request: HttpRequest
    kwargs: dict[str, Any]
    url_base: str

    if TYPE_CHECKING:

        def get_queryset(self) -> models.QuerySet: ...

        def get_filterset(self, queryset: models.QuerySet | None = None) -> Any: ...

    # -- the contract with PowerCRUDView ------------------------------------------------

    @property
    def bulk_enabled(self) -> bool:
        """Whether the list shows checkboxes and the toolbar: bulk fields, and a permission."""
        if not self.bulk_fields:
            return False
        return self.has_bulk_permission("change") or self.can_bulk_delete()

    @classmethod
    def get_bulk_roles(cls) -> list[Any]:
        """The roles of the bulk endpoints."""
        from .roles import PowerRole

        return [PowerRole.SELECT, PowerRole.BULK_EDIT, PowerRole.BULK_DELETE, PowerRole.BULK_STATUS]

    @classmethod
    def get_bulk_urls(cls) -> list[URLPattern]:
        """URL patterns of the bulk endpoints (none when ``bulk_fields`` is empty)."""
        if not cls.bulk_fields:
            return []
        return [role.get_url(cls) for role in cls.get_bulk_roles()]

    # -- hooks --------------------------------------------------------------------------

    def has_bulk_permission(self, action: str) -> bool:
        """Whether the user may ``action`` ("change" or "delete") the model's rows."""
        opts = self.model._meta
        codename = get_permission_codename(action, opts)
        return self.request.user.has_perm(f"{opts.app_label}.{codename}")

    def can_bulk_delete(self) -> bool:
        return bool(self.bulk_delete) and self.has_bulk_permission("delete")

    def get_bulk_selection(self) -> Selection:
        """This view's selection, kept in the session."""
        key = Selection.key_for(type(self), self.model)
        return Selection(self.request.session, key, self.model)

    def get_bulk_queryset(self) -> models.QuerySet:
        """The rows that may be selected and changed (default: ``get_queryset()``)."""
        return self.get_queryset()

    def get_bulk_matching_queryset(self, query: QueryDict) -> models.QuerySet:
        """Every row the list shows for the GET parameters ``query``, across all pages."""
        with self.bulk_list_parameters(query):
            queryset = self.get_bulk_queryset()
            filterset = self.get_filterset(queryset)
            return queryset if filterset is None else filterset.qs

    @contextlib.contextmanager
    def bulk_list_parameters(self, query: QueryDict) -> Iterator[None]:
        """Let the list's hooks (which read ``request.GET``) see the list's parameters."""
        request = self.request
        original = request.GET
        # The stubs type GET as immutable; the hooks only read it, so a mutable one does.
        request.GET = query  # type: ignore[assignment]
        try:
            yield
        finally:
            request.GET = original

    def get_async_manager_class(self) -> type[AsyncManager]:
        """The class that schedules and reads bulk jobs (``async_manager_class``)."""
        manager = self.async_manager_class
        return import_string(manager) if isinstance(manager, str) else manager

    def get_async_manager(self) -> AsyncManager:
        return self.get_async_manager_class()(self.async_manager_config)

    def use_bulk_job(self, count: int) -> bool:
        """Whether ``count`` objects are changed by a job rather than in this request."""
        threshold = self.bulk_async_threshold
        return threshold is not None and count >= threshold

    def get_bulk_form(self, data: QueryDict | None = None) -> BulkEditForm:
        return self.bulk_form_class(data, model=self.model, fields=self.bulk_fields)

    def get_bulk_lock_targets(self, pks: list[str]) -> list[Any]:
        """What a bulk operation on ``pks`` holds and declares: each object (add parents here)."""
        return [(self.model, pk) for pk in pks]

    def bulk_view_key(self) -> str:
        """Identifies this view in its jobs' meta (a job's progress is read by its own view)."""
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def bulk_url(self, role_name: str, **kwargs: Any) -> str:
        role = next(role for role in self.get_bulk_roles() if role.name == role_name)
        return reverse(f"{self.url_base}-{role.url_name_component}", kwargs=kwargs or None)

    def is_bulk_request(self) -> bool:
        """Whether this request is one of the bulk endpoints (not the list)."""
        role = getattr(self, "role", None)
        return role is not None and any(role is bulk for bulk in self.get_bulk_roles())

    # -- endpoints ----------------------------------------------------------------------

    def post_select(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Change the selection: ``action`` = toggle, page, set_page, all, clear or show."""
        self.require_bulk()
        selection = self.get_bulk_selection()
        action = request.POST.get("action", "toggle")
        page = [selection.canonical(pk) for pk in request.POST.getlist("page")]
        affected = page
        notice: tuple[str, str] | None = None
        status = 200
        try:
            if action == "toggle":
                pk = selection.canonical(request.POST.get("toggle", ""))
                affected = [pk]
                if pk in selection:
                    selection.remove([pk])
                elif self.bulk_existing_pks([pk]):
                    selection.add([pk])
                else:
                    notice, status = ("error", "That row no longer exists."), 422
            elif action == "page":
                existing = self.bulk_existing_pks(page)
                if existing and all(pk in selection for pk in existing):
                    selection.remove(existing)
                else:
                    selection.add(existing)
            elif action == "set_page":  # the page's checkboxes, posted without JavaScript
                checked = set(self.bulk_existing_pks(request.POST.getlist("pk")))
                on_page = set(page)
                kept = [pk for pk in selection if pk not in on_page or pk in checked]
                selection.replace([*kept, *(pk for pk in page if pk in checked)])
            elif action == "all":
                matching = self.get_bulk_matching_queryset(self.get_bulk_list_query())
                pks = list(matching.values_list("pk", flat=True)[: selection.limit + 1])
                if len(pks) > selection.limit:  # say how many, without loading them
                    raise SelectionLimitExceeded(matching.count(), selection.limit)
                selection.replace([str(pk) for pk in pks])
            elif action == "clear":
                selection.clear()
            elif action != "show":
                raise BadRequest(f"Unknown selection action {action[:40]!r}.")
        except SelectionLimitExceeded as exc:
            logger.info("Selection refused: %s", exc)  # which setting to raise, if it is one
            notice, status = ("error", exc.user_message), 422
        return self.bulk_selection_response(affected, notice, status)

    def post_bulk_edit(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Show the bulk edit form, or (``stage=apply``) apply it to the selected rows."""
        self.require_bulk("change")
        pks = self.get_bulk_selected_pks()
        if not pks:
            return self.bulk_nothing_selected()
        if conflicts := self.get_bulk_conflicts(pks):
            return self.bulk_conflict_response(conflicts, len(pks))
        applying = request.POST.get("stage") == "apply"
        form = self.get_bulk_form(request.POST if applying else None)
        template = "powercrud/bulk/edit_form.html"
        if not applying:
            return self.render_bulk(template, form=form, count=len(pks))
        if not form.is_valid():
            return self.render_bulk(template, status=422, form=form, count=len(pks))
        kwargs = {"model": self.model._meta.label_lower, "pks": pks, **form.job_kwargs()}
        return self.run_bulk("edit", self.bulk_edit_job, kwargs, template, form=form)

    def post_bulk_delete(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Ask to confirm, or (``stage=apply``) delete the selected rows."""
        self.require_bulk("delete")
        if not self.bulk_delete:
            raise PermissionDenied("Bulk delete is turned off for this list.")
        pks = self.get_bulk_selected_pks()
        if not pks:
            return self.bulk_nothing_selected()
        if conflicts := self.get_bulk_conflicts(pks):
            return self.bulk_conflict_response(conflicts, len(pks))
        template = "powercrud/bulk/delete_confirm.html"
        if request.POST.get("stage") != "apply":
            return self.render_bulk(template, count=len(pks))
        kwargs = {"model": self.model._meta.label_lower, "pks": pks}
        return self.run_bulk("delete", self.bulk_delete_job, kwargs, template)

    def bulk_status(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The progress of a bulk job; HTTP 286 (stop polling) once it has ended."""
        self.require_bulk()
        manager = self.get_async_manager()
        job = manager.get_job(self.kwargs["job_pk"])
        if job is None or not can_see(request.user, job):
            raise Http404("No such job.")
        described = manager.describe(job)
        if described.get("view") != self.bulk_view_key():
            raise Http404("No such job for this list.")
        job_status = manager.status(job)
        context = self.bulk_progress_context(job, job_status, str(described.get("action", "")))
        if job_status.succeeded:
            self.get_bulk_selection().remove(str(pk) for pk in job_pks(job))
        if not self.is_bulk_fragment():
            return self.render_bulk("powercrud/bulk/progress.html", **context)
        # Once the job has ended, the modal's title (outside the polled element) says how.
        response = self.render_bulk(
            "powercrud/bulk/progress_status.html", oob_title=job_status.finished, **context
        )
        if job_status.finished:
            response.status_code = HTMX_STOP_POLLING
        if job_status.succeeded:
            self.bulk_trigger(response, {CHANGED_EVENT: {"message": context["done_message"]}})
        return response

    # -- running an operation ---------------------------------------------------------

    def run_bulk(
        self,
        action: str,
        function: str,
        kwargs: dict[str, Any],
        template: str,
        form: Form | None = None,
    ) -> HttpResponse:
        """Run ``function(**kwargs)`` here or as a job, holding every object's lock."""
        kwargs = as_json(kwargs)
        pks: list[str] = kwargs["pks"]
        targets = self.get_bulk_lock_targets(pks)
        using = router.db_for_write(self.model)
        try:
            if self.use_bulk_job(len(pks)):
                # The job's row commits in this transaction, under the objects' locks, so
                # no other request can check "not busy" and write in between.
                with transaction.atomic(using=using), hold(*targets, using=using):
                    job = self.get_async_manager().schedule(
                        function,
                        kwargs,
                        locks=targets,
                        user=self.request.user,
                        meta={
                            "view": self.bulk_view_key(),
                            "action": action,
                            "model": self.model._meta.label_lower,
                            "count": len(pks),
                        },
                    )
                return self.bulk_scheduled_response(job, action)
            with transaction.atomic(using=using), hold(*targets, using=using):
                result = import_string(function)(**kwargs)
        except Conflict as exc:
            return self.bulk_conflict_response(self.get_bulk_conflicts(pks), len(pks), exc)
        except BulkValidationError as exc:
            return self.render_bulk(
                template,
                status=422,
                form=form,
                count=len(pks),
                error=str(exc).splitlines()[0],
                object_errors=exc.errors,
            )
        except (BulkError, ScheduleError) as exc:
            return self.render_bulk(template, status=422, form=form, count=len(pks), error=str(exc))
        self.get_bulk_selection().remove(pks)
        return self.bulk_done_response(self.bulk_success_message(action, result))

    # -- selection helpers ------------------------------------------------------------

    def bulk_existing_pks(self, values: Iterable[Any]) -> list[str]:
        """Canonical pks of those of ``values`` that are rows of ``get_bulk_queryset()``."""
        return self.get_bulk_selection().existing(self.get_bulk_queryset(), values)

    def get_bulk_selected_pks(self) -> list[str]:
        """The selected rows that still exist in ``get_bulk_queryset()``; others are dropped."""
        selection = self.get_bulk_selection()
        pks = selection.existing(self.get_bulk_queryset(), selection.pks)
        if len(pks) != len(selection):
            kept = set(pks)
            selection.remove([pk for pk in selection.pks if pk not in kept])
        return pks

    def require_bulk(self, action: str | None = None) -> None:
        """Raise 404 if bulk is off for this view, 403 if the user may not do ``action``."""
        if not self.bulk_fields:
            raise Http404("Bulk operations are off for this list.")
        allowed = self.bulk_enabled if action is None else self.has_bulk_permission(action)
        if not allowed:
            raise PermissionDenied("You may not change these rows in bulk.")

    def bulk_objects(self, pks: list[str]) -> dict[str, models.Model]:
        """The rows with these canonical pks, by pk (one query per thousand)."""
        selection = self.get_bulk_selection()
        found: dict[str, models.Model] = {}
        for chunk in chunked(pks):
            for obj in self.get_bulk_queryset().filter(pk__in=selection.python_values(chunk)):
                found[str(obj.pk)] = obj
        return found

    # -- conflicts --------------------------------------------------------------------

    def get_bulk_conflicts(self, pks: list[str]) -> list[BusyObject]:
        """The selected objects queued or running jobs declared, and those jobs.

        One query per thousand objects when nothing is busy (``conflicts.busy_jobs``).
        """
        jobs = busy_jobs(self.get_bulk_lock_targets(pks))
        if not jobs:
            return []
        keys = {lock_key((self.model, pk)): pk for pk in pks}
        held = holders(keys, [job.pk for job in jobs])
        blocking = {item.job.pk: item for item in blocking_jobs(jobs, self.request.user)}
        busy_pks = [pk for key, pk in keys.items() if key in held]
        objects = self.bulk_objects(busy_pks[: self.bulk_conflicts_shown])
        conflicts = [
            BusyObject(
                pk,
                str(objects[pk]) if pk in objects else pk,
                [blocking[job_id] for job_id in held[lock_key((self.model, pk))]],
            )
            for pk in busy_pks
        ]
        # Jobs found through other targets of get_bulk_lock_targets() (parent objects, say).
        named = {job_id for ids in held.values() for job_id in ids}
        if others := [blocking[job.pk] for job in jobs if job.pk not in named]:
            conflicts.append(BusyObject("", "Objects these rows depend on", others))
        return conflicts


__all__ = [
    "CHANGED_EVENT",
    "BulkContext",
    "BulkEditForm",
    "BulkMixin",
    "BusyObject",
    "ObjectError",
]
