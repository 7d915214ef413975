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
queued or running job declared any of them (``async_queue.locks.busy``). Below
``bulk_async_threshold`` objects the job function runs in the request, in one
transaction inside ``async_queue.locks.hold()``, so a job starting after the check
makes it fail with the same 409, never both writing. At or above it, the same
function is scheduled through the view's async manager, declaring every object in
``locks=``, inside the same kind of transaction (the job's row commits under the
objects' locks). A progress modal then polls ``bulk_status`` until the job ends
(HTTP 286) and refreshes the table when it succeeded. The selection is cleared
once an operation succeeded.

Every endpoint also works without JavaScript: a plain POST redirects back to the
list (with a message) or renders a full page.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import BadRequest, ImproperlyConfigured, PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, router, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, URLPattern, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.module_loading import import_string
from django_htmx.http import HTMX_STOP_POLLING
from django_htmx.middleware import HtmxDetails

from async_queue import Conflict, Job, JobLock, ScheduleError
from async_queue.locks import busy, hold, lock_key
from async_queue.permissions import visible_jobs
from async_queue.progress import snapshot

from .async_manager import AsyncManager, JobStatus
from .conflicts import job_url
from .jobs import BulkError, BulkValidationError, ObjectError
from .selection import Selection, SelectionLimitExceeded, chunked

if TYPE_CHECKING:
    from django.forms import Form

CHANGED_EVENT = "powercrud:changed"  # the list refreshes its table (and flashes the message)
CLOSE_MODAL_EVENT = "powercrud:close-modal"
M2M_MODE_CHOICES = [("add", "Add"), ("replace", "Replace with"), ("remove", "Remove")]


def htmx(request: HttpRequest) -> HtmxDetails:
    """``request.htmx``, also when ``HtmxMiddleware`` is not installed."""
    details = getattr(request, "htmx", None)
    return details if isinstance(details, HtmxDetails) else HtmxDetails(request)


def digest(text: str, size: int = 6) -> str:
    """A short, stable, HTML-id-safe digest of ``text``."""
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def as_json(value: Any) -> Any:
    """``value`` after a JSON round trip: exactly what a job would receive."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def job_pks(job: Job) -> list[Any]:
    """The pks a bulk job was given (none if its stored kwargs say otherwise)."""
    kwargs = job.kwargs if isinstance(job.kwargs, dict) else {}
    pks = kwargs.get("pks")
    return [pk for pk in pks if isinstance(pk, str | int)] if isinstance(pks, list) else []


# -- what the templates show ------------------------------------------------------------


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


@dataclass(frozen=True)
class BlockingJob:
    """A queued or running job that declared some selected objects."""

    job: Job
    status: JobStatus
    owner: str
    url: str


@dataclass
class BusyObject:
    """A selected object that queued or running jobs declared, with those jobs."""

    pk: str
    label: str
    jobs: list[BlockingJob] = field(default_factory=list)


# -- the bulk edit form -----------------------------------------------------------------


class BulkEditForm(forms.Form):
    """One optional change per bulk field: tick "change", then give the value.

    For each name in ``bulk_fields`` the form has ``<name>__change`` (a checkbox),
    ``<name>`` (the model field's own form field, so choices, foreign keys and
    ``limit_choices_to`` work as in a model form) and, for many-to-many fields,
    ``<name>__mode`` (add, replace or remove). A boolean is a Yes/No choice, so
    "set to No" is explicit. ``__`` cannot occur in a model field's name.
    """

    def __init__(
        self, *args: Any, model: type[models.Model], fields: Iterable[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self.names = list(fields)
        self.required_names: set[str] = set()
        for name in self.names:
            model_field = model._meta.get_field(name)
            if not getattr(model_field, "editable", False):
                raise ImproperlyConfigured(
                    f"bulk_fields: {model._meta.label}.{name} is not an editable field."
                )
        form_fields = forms.fields_for_model(model, fields=self.names, apply_limit_choices_to=True)
        for name in self.names:
            model_field = model._meta.get_field(name)
            form_field = form_fields.get(name)
            self.check_field(name, model_field, form_field)
            assert form_field is not None
            if form_field.required:
                self.required_names.add(name)
            form_field.required = False
            form_field.initial = None  # a model default would look like a proposed value
            if isinstance(form_field, forms.BooleanField):
                form_field.widget = forms.Select(choices=[(True, "Yes"), (False, "No")])
            label = form_field.label or name
            self.fields[f"{name}__change"] = forms.BooleanField(
                required=False, label=f"Change {label}"
            )
            if model_field.many_to_many:
                self.fields[f"{name}__mode"] = forms.ChoiceField(
                    choices=M2M_MODE_CHOICES,
                    initial="add",
                    required=False,
                    label=f"How to change {label}",
                )
            self.fields[name] = form_field

    def check_field(self, name: str, model_field: Any, form_field: forms.Field | None) -> None:
        where = f"bulk_fields: {self.model._meta.label}.{name}"
        if form_field is None or getattr(model_field, "primary_key", False):
            raise ImproperlyConfigured(f"{where} is not an editable field.")
        if model_field.many_to_many and not model_field.remote_field.through._meta.auto_created:
            raise ImproperlyConfigured(
                f"{where} has a custom through model, whose extra fields bulk edit cannot fill."
            )
        if isinstance(form_field, forms.FileField):
            raise ImproperlyConfigured(f"{where} is a file field, which bulk edit cannot set.")

    def is_m2m(self, name: str) -> bool:
        return f"{name}__mode" in self.fields

    def mode(self, name: str) -> str:
        """How many-to-many field ``name`` changes: add (the default), replace or remove."""
        return self.cleaned_data.get(f"{name}__mode") or "add"

    def changed_names(self) -> list[str]:
        return [name for name in self.names if self.cleaned_data.get(f"{name}__change")]

    def rows(self) -> list[dict[str, Any]]:
        """The bound fields of each bulk field, for the template."""
        return [
            {
                "name": name,
                "change": self[f"{name}__change"],
                "value": self[name],
                "mode": self[f"{name}__mode"] if self.is_m2m(name) else None,
            }
            for name in self.names
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        changed = self.changed_names()
        if not changed:
            raise forms.ValidationError("Tick at least one field to change.")
        for name in changed:
            if name in self.errors:
                continue
            value = cleaned.get(name)
            empty = value in forms.Field.empty_values or (
                isinstance(value, models.QuerySet) and not value
            )
            if self.is_m2m(name) and self.mode(name) in ("add", "remove"):
                if empty:
                    self.add_error(name, "Choose at least one.")
            elif empty and name in self.required_names:
                self.add_error(name, "This field is required.")
        return cleaned

    def job_kwargs(self) -> dict[str, Any]:
        """``changes`` and ``m2m`` for ``powercrud.jobs.bulk_edit``, as JSON."""
        changes: dict[str, Any] = {}
        m2m: dict[str, dict[str, Any]] = {}
        for name in self.changed_names():
            value = self.cleaned_data.get(name)
            model_field = self.model._meta.get_field(name)
            if self.is_m2m(name):
                m2m[name] = {
                    "mode": self.mode(name),
                    "pks": [str(obj.pk) for obj in value or []],
                }
            elif model_field.is_relation:
                target = model_field.target_field.attname  # type: ignore[union-attr]
                changes[name] = None if value is None else getattr(value, target)
            else:
                changes[name] = value
        return as_json({"changes": changes, "m2m": m2m})


# -- the mixin ----------------------------------------------------------------------------


class BulkMixin:
    """Bulk selection, bulk edit and bulk delete for a neapolitan ``CRUDView``."""

    bulk_fields: list[str] = []
    #: Offer bulk delete (to users with the delete permission) when bulk is on.
    bulk_delete: bool = True
    #: This many objects or more are changed by a job; ``None``: never.
    bulk_async_threshold: int | None = 100
    #: The functions that do the work, in the request or in a worker (dotted paths).
    bulk_edit_job: str = "powercrud.jobs.bulk_edit"
    bulk_delete_job: str = "powercrud.jobs.bulk_delete"
    bulk_form_class: type[Form] = BulkEditForm
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
        request.GET = query  # type: ignore[misc]
        try:
            yield
        finally:
            request.GET = original  # type: ignore[misc]

    def get_bulk_list_query(self) -> QueryDict:
        """The list's GET parameters: this GET's on the list, else posted, else htmx's URL."""
        if not self.is_bulk_request():
            query = self.request.GET.copy()
        elif self.request.method == "POST" and "query" in self.request.POST:
            query = QueryDict(self.request.POST["query"], mutable=True)
        else:
            query = QueryDict(urlsplit(htmx(self.request).current_url or "").query, mutable=True)
        query.pop("page", None)
        return query

    def get_bulk_next_url(self) -> str:
        """Where plain bulk requests return: this list page, the posted ``next``, or the list."""
        if not self.is_bulk_request():
            candidate = self.request.get_full_path()
        elif self.request.method == "POST" and self.request.POST.get("next"):
            candidate = self.request.POST["next"]
        else:
            candidate = htmx(self.request).current_url_abs_path or ""
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={self.request.get_host()}, require_https=False
        ):
            return candidate
        try:
            return reverse(f"{self.url_base}-list")
        except NoReverseMatch:
            return "/"

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

    def get_bulk_form(self, data: QueryDict | None = None) -> Form:
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

    def is_bulk_fragment(self) -> bool:
        """An htmx request for a piece of the page (not a boosted link)."""
        details = htmx(self.request)
        return bool(details) and not details.boosted

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
            notice, status = ("error", str(exc)), 422
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
        if job is None or not visible_jobs(request.user).filter(pk=job.pk).exists():
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
        response = self.render_bulk("powercrud/bulk/progress_status.html", **context)
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
        """The selected objects queued or running jobs declared (``locks.busy``), and those jobs.

        One query per thousand objects when nothing is busy.
        """
        found: dict[int, Job] = {}
        for chunk in chunked(pks):
            for job in busy(*self.get_bulk_lock_targets(chunk)).select_related("user"):
                found[job.pk] = job
        if not found:
            return []
        keys = {lock_key((self.model, pk)): pk for pk in pks}
        held: dict[str, list[int]] = defaultdict(list)
        for chunk in chunked(list(keys)):
            rows = JobLock.objects.filter(key__in=chunk, job_id__in=list(found))
            for key, job_id in rows.order_by("job_id").values_list("key", "job_id"):
                held[key].append(job_id)
        progress = snapshot(list(found.values()))
        blocking = {
            job.pk: BlockingJob(
                job=job,
                status=JobStatus(
                    job.pk,
                    str(job.status),
                    progress[job.pk].current,
                    progress[job.pk].total,
                    progress[job.pk].message,
                ),
                owner=job.user.get_username() if job.user_id else "",
                url=job_url(job, self.request.user) or "",
            )
            for job in found.values()
        }
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
        if others := [blocking[job_id] for job_id in found if job_id not in named]:
            conflicts.append(BusyObject("", "Objects these rows depend on", others))
        return conflicts

    # -- responses ----------------------------------------------------------------------

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

    def bulk_progress_context(self, job: Job, job_status: JobStatus, action: str) -> dict[str, Any]:
        count = self.get_async_manager().describe(job).get("count")
        return {
            "job": job,
            "count": count if isinstance(count, int) and not isinstance(count, bool) else "",
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
        response["HX-Trigger"] = json.dumps(events, cls=DjangoJSONEncoder)
        return response

    def bulk_message(self, notice: tuple[str, str] | None) -> None:
        if notice is not None:
            level = messages.ERROR if notice[0] == "error" else messages.SUCCESS
            messages.add_message(self.request, level, notice[1], fail_silently=True)


__all__ = [
    "CHANGED_EVENT",
    "BulkContext",
    "BulkEditForm",
    "BulkMixin",
    "BusyObject",
    "ObjectError",
]
