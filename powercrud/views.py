"""``PowerCRUDView``: neapolitan's ``CRUDView`` with htmx lists, modals, permissions and conflicts.

Configuration is class attributes; behaviour changes by overriding a ``get_*`` hook.

- **The list** is one page (``<app>/<model>_list.html``, then ``powercrud/object_list.html``)
  whose results (table, pagination, bulk toolbar) are a named partial. Sortable headers
  (``?o=field`` / ``?o=-field``, only fields of ``get_sortable_fields()``), the filter
  form (django-filter, from ``filterset_fields``) and the pagination links (``?page=``,
  ``?page_size=`` from ``page_size_options``) all are plain links and GET forms; with
  htmx they fetch the results partial in place and push the URL, so reload and back work.
  Foreign keys shown in the table are ``select_related``, many-to-many ones prefetched:
  a page costs the same few queries whatever its size. Pages come from Django's
  ``Paginator`` (one ``COUNT`` per page, which the filter's index serves).
- **Create, detail, update and delete** render their page, or, for an htmx request,
  the page's partial into the list's modal. An invalid form answers 422 with the
  form; a successful htmx write answers 204 with ``HX-Trigger`` events that close the
  modal (``powercrud:close-modal``) and refresh the table (``powercrud:changed``); a
  plain one redirects.
- **Permissions**: every route needs its model permission (``roles.permission_action``):
  anonymous users are sent to log in, others get 403. ``can`` in the context says
  which buttons to show.
- **Conflicts**: updating or deleting an object a queued or running job declared
  (``async_queue.locks.busy``) answers 409 with the conflict notice (and the user's
  bound form). The write runs in ``transaction.atomic()`` inside ``locks.hold()``, so a
  job starting between the check and the write makes it fail with the same notice.
- **Roles**: neapolitan's ``Role`` plus powercrud's POST roles (``roles.PowerRole``),
  whose URLs the ``BulkMixin`` adds through ``get_bulk_urls()``. HEAD works on every
  GET route; other methods answer 405.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_permission_codename
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, PermissionDenied
from django.core.paginator import Page, Paginator
from django.db import models, router, transaction
from django.db.models.deletion import ProtectedError, RestrictedError
from django.forms import BaseForm
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern
from django.utils.cache import patch_vary_headers
from django.utils.decorators import classonlymethod
from django.utils.functional import cached_property, classproperty
from django.utils.text import capfirst
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event
from django_htmx.middleware import HtmxDetails
from neapolitan.views import CRUDView, Role

from async_queue import locks
from async_queue.exceptions import Conflict

from . import conflicts
from .bulk import BulkMixin
from .roles import PowerRole, permission_action
from .roles import get_power_urls as power_urls

CHANGED_EVENT = "powercrud:changed"
CLOSE_MODAL_EVENT = "powercrud:close-modal"
ACTIONS = ("view", "add", "change", "delete")
FRAGMENTS = {
    Role.LIST: "results",
    Role.DETAIL: "detail",
    Role.CREATE: "form",
    Role.UPDATE: "form",
    Role.DELETE: "confirm_delete",
}


@dataclass(frozen=True)
class Column:
    """A column of the list: its header, and where clicking the header sorts to."""

    name: str
    label: str
    sort_url: str = ""
    direction: str = ""  # "asc", "desc", or "" when the list is not sorted by it

    @property
    def aria_sort(self) -> str:
        return {"asc": "ascending", "desc": "descending"}.get(self.direction, "none")


@dataclass(frozen=True)
class Row:
    """An object of the list with its cell values and its action URLs."""

    object: models.Model
    cells: list[Any]
    detail_url: str | None
    update_url: str | None
    delete_url: str | None


@dataclass(frozen=True)
class PageLink:
    number: int | None  # None for an ellipsis
    url: str = ""
    current: bool = False


class Partials:
    """``partials.table`` in a template: the partial's names in fallback order."""

    def __init__(self, view: PowerCRUDView) -> None:
        self.view = view

    def __getitem__(self, name: str) -> list[str]:
        return self.view.get_partial_template_names(name)


def is_many(field: models.Field | models.ForeignObjectRel) -> bool:
    """A many-to-many field, or a reverse foreign key: a cell shows a list of objects."""
    return bool(field.many_to_many or field.one_to_many)


def htmx_details(request: HttpRequest) -> HtmxDetails:
    """``request.htmx``, also when ``HtmxMiddleware`` is not installed (see check E001)."""
    details = getattr(request, "htmx", None)
    return details if isinstance(details, HtmxDetails) else HtmxDetails(request)


class PowerCRUDView(BulkMixin, CRUDView):
    """A neapolitan ``CRUDView`` with htmx lists and modals, permissions and conflict checks.

    ``urlpatterns += BookView.get_urls()`` gives every route: neapolitan's five
    (``book-list``, ``book-create``, ``book-detail``, ``book-update``, ``book-delete``)
    and the bulk endpoints of ``get_bulk_urls()``.
    """

    #: The template the pages extend; it must have a ``content`` block.
    base_template: str = "base.html"
    #: Whether the pages load the vendored htmx (turn off if ``base_template`` does).
    include_htmx: bool = True
    #: Columns of the list (default: ``fields``); model fields, or attributes/methods.
    list_fields: Sequence[str] | None = None
    #: Fields the detail page shows (default: ``fields``).
    detail_fields: Sequence[str] | None = None
    #: Fields the list may be sorted by (default: the list's concrete model fields).
    sortable_fields: Sequence[str] | None = None
    #: The order when the request asks for none (default: the model's ``Meta.ordering``).
    ordering: Sequence[str] = ()
    ordering_kwarg: str = "o"
    #: django-filter: field names (or ``{name: [lookups]}``); or set ``filterset_class``.
    filterset_fields: Sequence[str] | dict[str, list[str]] | None = None
    filterset_class: Any = None
    paginate_by: int | None = 25
    page_size_kwarg: str = "page_size"
    #: The page sizes ``?page_size=`` may ask for (``paginate_by`` is always allowed).
    page_size_options: Sequence[int] = (10, 25, 50, 100)

    # -- routing ---------------------------------------------------------------------

    @classproperty
    def path_converter(cls) -> str:
        """The converter of the lookup field: ``int``, ``uuid`` or ``str`` (set it to override)."""
        if cls.model is None:
            return "int"
        opts = cls.model._meta
        field = opts.pk if cls.lookup_field == "pk" else opts.get_field(cls.lookup_field)
        if isinstance(field, models.UUIDField):
            return "uuid"
        if isinstance(field, models.IntegerField):
            return "int"
        return "str"

    @classonlymethod
    def get_urls(cls, roles: Iterable[Role | PowerRole] | None = None) -> list[URLPattern]:
        """URL patterns of ``roles`` (default: neapolitan's five and the bulk endpoints).

        Powercrud's patterns come first: with a ``str`` lookup, ``book/select/`` would
        otherwise resolve as the detail page of the object whose key is ``select``.
        """
        if roles is None:
            return [*cls.get_bulk_urls(), *super().get_urls()]
        roles = list(roles)
        power = [role for role in roles if isinstance(role, PowerRole)]
        plain = [role for role in roles if not isinstance(role, PowerRole)]
        return [*power_urls(cls, power), *super().get_urls(plain)]

    @classonlymethod
    def get_power_urls(cls, roles: Iterable[PowerRole] | None = None) -> list[URLPattern]:
        """URL patterns of these power roles (default: every one the view implements)."""
        return power_urls(cls, roles)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # neapolitan binds the role's handlers after setup(), where Django aliases HEAD.
        if hasattr(self, "get") and not hasattr(self, "head"):
            self.head = self.get
        method = (request.method or "").lower()
        if method not in self.http_method_names or not hasattr(self, method):
            return self.http_method_not_allowed(request, *args, **kwargs)
        if method != "options" and not self.has_permission():
            return self.handle_no_permission()
        response = super().dispatch(request, *args, **kwargs)
        patch_vary_headers(response, ("HX-Request",))
        return response

    # -- permissions -----------------------------------------------------------------

    def has_permission(self, role: Role | PowerRole | None = None) -> bool:
        """Whether the user may use ``role`` (default: this request's role)."""
        return self.can[permission_action(role or self.role)]

    def user_can(self, action: str) -> bool:
        """Whether the user has the model permission ``action`` (view, add, change, delete).

        As in the admin, the change permission also allows viewing.
        """
        user = self.request.user
        opts = self.model._meta
        if user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}"):
            return True
        change = f"{opts.app_label}.{get_permission_codename('change', opts)}"
        return action == "view" and user.has_perm(change)

    @cached_property
    def can(self) -> dict[str, bool]:
        """``{"view": ..., "add": ..., "change": ..., "delete": ...}`` for the user."""
        return {action: self.user_can(action) for action in ACTIONS}

    def handle_no_permission(self) -> HttpResponse:
        if self.request.user.is_authenticated:
            raise PermissionDenied
        if self.htmx:
            # Log in, then come back to the page, not to the fragment it asked for.
            here = self.htmx.current_url_abs_path or self.request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(here).url)
        return redirect_to_login(self.request.get_full_path())

    # -- htmx ------------------------------------------------------------------------

    @cached_property
    def htmx(self) -> HtmxDetails:
        return htmx_details(self.request)

    @cached_property
    def wants_fragment(self) -> bool:
        """An htmx request for a piece of the page (not boosted, not a history restore)."""
        details = self.htmx
        return bool(details) and not details.boosted and not details.history_restore_request

    # -- the list --------------------------------------------------------------------

    def list(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """GET handler for the list: filter, sort, paginate; the results partial for htmx."""
        queryset = self.get_list_queryset()
        filterset = self.get_filterset(queryset)
        if filterset is not None:
            queryset = filterset.qs
        queryset = queryset.order_by(*self.get_ordering())
        if not self.allow_empty and not queryset.exists():
            raise Http404
        # Kept on the view for the bulk mixin ("select all matching the filter").
        self.filterset = filterset
        self.filtered_queryset = queryset
        page_size = self.get_paginate_by()
        page = None if page_size is None else self.paginate_queryset(queryset, page_size)
        self.page_obj = page
        self.object_list = queryset if page is None else page.object_list
        context = self.get_context_data(
            page_obj=page,
            is_paginated=page is not None and page.has_other_pages(),
            paginator=None if page is None else page.paginator,
            filterset=filterset,
            **self.get_list_context(page),
        )
        context.update(self.get_bulk_context())
        return self.render_to_response(context)

    def get_list_fields(self) -> list[str]:
        return list(self.list_fields if self.list_fields is not None else self.fields or ())

    def get_detail_fields(self) -> list[str]:
        return list(self.detail_fields if self.detail_fields is not None else self.fields or ())

    def get_sortable_fields(self) -> list[str]:
        if self.sortable_fields is not None:
            return list(self.sortable_fields)
        return [
            name
            for name in self.get_list_fields()
            if (field := self.model_field(name)) is not None
            and field.concrete
            and not is_many(field)
        ]

    def get_list_queryset(self) -> models.QuerySet:
        """``get_queryset()`` with the relations the table shows joined or prefetched."""
        queryset = self.get_queryset()
        fields = [self.model_field(name) for name in self.get_list_fields()]
        joined = [
            f.name
            for f in fields
            if f is not None and f.concrete and (f.many_to_one or f.one_to_one)
        ]
        prefetched = [f.name for f in fields if f is not None and is_many(f)]
        if joined:
            queryset = queryset.select_related(*joined)
        if prefetched:
            queryset = queryset.prefetch_related(*prefetched)
        return queryset

    def get_sort(self) -> str:
        """The requested sort (``field`` or ``-field``) if it is allowed, else ``""``."""
        value = self.request.GET.get(self.ordering_kwarg, "")
        name = value.removeprefix("-")
        return value if name and name in self.get_sortable_fields() else ""

    def get_ordering(self) -> list[Any]:
        """The requested sort or the default order, then the primary key to break ties."""
        sort = self.get_sort()
        ordering: list[Any] = [sort] if sort else list(self.ordering or self.model._meta.ordering)
        names = {o.lstrip("-") for o in ordering if isinstance(o, str)}
        if not names & {"pk", self.model._meta.pk.name}:
            first = ordering[0] if ordering else ""
            descending = isinstance(first, str) and first.startswith("-")
            ordering.append("-pk" if descending else "pk")
        return ordering

    def get_page_size_options(self) -> list[int]:
        if self.paginate_by is None:
            return []
        return sorted({*self.page_size_options, self.paginate_by})

    def get_paginate_by(self) -> int | None:
        """``?page_size=`` if it is one of the options, else ``paginate_by``."""
        if self.paginate_by is None:
            return None
        try:
            size = int(self.request.GET.get(self.page_size_kwarg, ""))
        except ValueError:
            return self.paginate_by
        return size if size in self.get_page_size_options() else self.paginate_by

    def paginate_queryset(self, queryset: models.QuerySet, page_size: int) -> Page:
        """The requested page; past the end the last one (rows may have gone since)."""
        paginator = self.get_paginator(queryset, page_size)
        number: Any = self.kwargs.get(self.page_kwarg) or self.request.GET.get(self.page_kwarg)
        if number == "last":
            number = paginator.num_pages
        return paginator.get_page(number)

    def get_paginator(self, queryset: models.QuerySet, page_size: int) -> Paginator:
        return Paginator(queryset, page_size)

    def list_url(self, **changes: Any) -> str:
        """This list's URL with the current query changed (``None`` removes a parameter)."""
        params = self.request.GET.copy()
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = str(value)
        items = [(key, value) for key in params for value in params.getlist(key) if value != ""]
        return f"{self.request.path}?{urlencode(items)}" if items else self.request.path

    def get_columns(self) -> list[Column]:
        sort = self.get_sort()
        sortable = set(self.get_sortable_fields())
        columns = []
        for name in self.get_list_fields():
            if name not in sortable:
                columns.append(Column(name, self.get_label(name)))
                continue
            direction = {name: "asc", f"-{name}": "desc"}.get(sort, "")
            next_sort = f"-{name}" if direction == "asc" else name
            url = self.list_url(**{self.ordering_kwarg: next_sort, self.page_kwarg: None})
            columns.append(Column(name, self.get_label(name), url, direction))
        return columns

    def get_rows(self, objects: Iterable[models.Model]) -> list[Row]:
        fields = self.get_list_fields()
        can = self.can
        return [
            Row(
                object=obj,
                cells=[self.get_cell(obj, name) for name in fields],
                detail_url=Role.DETAIL.maybe_reverse(self, obj) if can["view"] else None,
                update_url=Role.UPDATE.maybe_reverse(self, obj) if can["change"] else None,
                delete_url=Role.DELETE.maybe_reverse(self, obj) if can["delete"] else None,
            )
            for obj in objects
        ]

    def get_page_links(self, page: Page | None) -> list[PageLink]:
        if page is None or not page.has_other_pages():
            return []
        links = []
        for number in page.paginator.get_elided_page_range(page.number, on_each_side=2):
            if isinstance(number, int):
                url = self.list_url(**{self.page_kwarg: number})
                links.append(PageLink(number, url, number == page.number))
            else:
                links.append(PageLink(None))
        return links

    def get_list_context(self, page: Page | None) -> dict[str, Any]:
        """What the list's partials show besides neapolitan's context."""
        page_size = self.get_paginate_by()

        def page_url(number: int) -> str:
            return self.list_url(**{self.page_kwarg: number})

        return {
            "columns": self.get_columns(),
            "rows": self.get_rows(self.object_list),
            "sort": self.get_sort(),
            "page_links": self.get_page_links(page),
            "previous_page_url": page_url(page.previous_page_number())
            if page is not None and page.has_previous()
            else "",
            "next_page_url": page_url(page.next_page_number())
            if page is not None and page.has_next()
            else "",
            "page_size": page_size,
            "page_size_options": self.get_page_size_options(),
            # The query without page and page size, for the page-size form's hidden inputs.
            "page_size_state": [
                (key, value)
                for key in self.request.GET
                if key not in (self.page_kwarg, self.page_size_kwarg)
                for value in self.request.GET.getlist(key)
                if value != ""
            ],
            "refresh_url": self.request.get_full_path(),
        }

    # -- cells and labels ------------------------------------------------------------

    def model_field(self, name: str) -> models.Field | None:
        try:
            return self.model._meta.get_field(name)
        except FieldDoesNotExist:
            return None

    def get_label(self, name: str) -> str:
        field = self.model_field(name)
        if field is not None:
            return capfirst(getattr(field, "verbose_name", name.replace("_", " ")))
        attribute = getattr(self.model, name, None)
        return capfirst(getattr(attribute, "short_description", name.replace("_", " ")))

    def get_cell(self, obj: models.Model, name: str) -> Any:
        """The value a list cell or a detail row shows for field ``name`` of ``obj``."""
        field = self.model_field(name)
        if field is None:
            value = getattr(obj, name)
            return value() if callable(value) else value
        if is_many(field):
            return ", ".join(str(related) for related in getattr(obj, name).all())
        if field.is_relation:
            return getattr(obj, name)
        if field.choices:
            return obj._get_FIELD_display(field)
        return getattr(obj, field.attname)

    # -- object pages ----------------------------------------------------------------

    def get_object(self) -> models.Model:
        obj = super().get_object()
        # Before a form changes it in memory: the title shown, and the keys to lock.
        self.object_title = str(obj)
        self.lock_keys = locks.lock_keys(self.get_lock_targets(obj))
        return obj

    def get_lock_targets(self, obj: models.Model) -> list[Any]:
        """What an edit or deletion of ``obj`` must not overlap (add parent objects here)."""
        return [obj]

    def find_conflict(self, obj: models.Model) -> Conflict | None:
        """The jobs that declared ``obj`` (queued or running), as a ``Conflict``, or None."""
        return conflicts.find_conflict(self.lock_keys)

    def detail(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = self.get_object()
        fields = self.get_detail_fields()
        details = [(self.get_label(name), self.get_cell(self.object, name)) for name in fields]
        return self.render_to_response(self.get_context_data(details=details))

    def show_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """GET handler of create and update; 409 with the form when the object is busy."""
        if self.role == Role.UPDATE:
            self.object = self.get_object()
        form = self.get_form(instance=self.object)
        if self.object is not None and (conflict := self.find_conflict(self.object)):
            return self.conflict_response(conflict, form=form)
        return self.render_to_response(self.get_context_data(form=form))

    def process_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """POST handler of create and update; a busy object keeps the input on screen."""
        if self.role == Role.UPDATE:
            self.object = self.get_object()
        form = self.get_form(data=request.POST, files=request.FILES, instance=self.object)
        if self.object is not None and (conflict := self.find_conflict(self.object)):
            return self.conflict_response(conflict, form=form)
        if form.is_valid():
            return self.form_valid(form)
        return self.form_invalid(form)

    def save_form(self, form: BaseForm) -> models.Model:
        """Save ``form`` holding the object's locks, in one transaction (may raise Conflict)."""
        using = router.db_for_write(self.model, instance=form.instance)
        with transaction.atomic(using=using):
            if self.role != Role.UPDATE:
                return form.save()
            with locks.hold(*self.lock_keys, using=using):
                return form.save()

    def form_valid(self, form: BaseForm) -> HttpResponse:
        created = self.role != Role.UPDATE
        try:
            self.object = self.save_form(form)
        except Conflict as conflict:
            return self.conflict_response(conflict, form=form)
        verb = "created" if created else "saved"
        return self.success_response(f"{capfirst(self.verbose_name)} “{self.object}” {verb}.")

    def form_invalid(self, form: BaseForm) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=422)

    def confirm_delete(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """GET handler of delete; 409 when the object is busy."""
        self.object = self.get_object()
        if conflict := self.find_conflict(self.object):
            return self.conflict_response(conflict)
        return self.render_to_response(self.get_context_data())

    def delete_object(self, obj: models.Model) -> None:
        """Delete ``obj`` holding its locks, in one transaction (may raise Conflict)."""
        using = router.db_for_write(self.model, instance=obj)
        with transaction.atomic(using=using), locks.hold(*self.lock_keys, using=using):
            obj.delete()

    def process_deletion(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """POST handler of delete."""
        self.object = self.get_object()
        if conflict := self.find_conflict(self.object):
            return self.conflict_response(conflict)
        try:
            self.delete_object(self.object)
        except Conflict as conflict:
            return self.conflict_response(conflict)
        except (ProtectedError, RestrictedError) as error:
            blockers = sorted({str(o) for o in error.args[1]})[:10] if len(error.args) > 1 else []
            context = self.get_context_data(delete_error=error.args[0], delete_blockers=blockers)
            return self.render_to_response(context, status=409)
        return self.success_response(
            f"{capfirst(self.verbose_name)} “{self.object_title}” deleted."
        )

    @property
    def verbose_name(self) -> str:
        return str(self.model._meta.verbose_name)

    def success_response(self, message: str) -> HttpResponse:
        """After a write: for htmx, 204 + events (refresh the table, close the modal)."""
        if self.wants_fragment:
            response = HttpResponse(status=204)
            trigger_client_event(response, CHANGED_EVENT, {"message": message})
            return trigger_client_event(response, CLOSE_MODAL_EVENT, {})
        return HttpResponseRedirect(self.get_success_url())

    def conflict_response(self, conflict: Conflict, **context: Any) -> HttpResponse:
        """409 with the conflict notice (and, for a form, the user's input)."""
        notice = conflicts.describe(conflict, self.request.user, refresh_url=self.request.path)
        return self.render_to_response(self.get_context_data(conflict=notice, **context), 409)

    # -- rendering -------------------------------------------------------------------

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            can=self.can,
            in_modal=self.wants_fragment,
            partials=Partials(self),
            list_view_url=Role.LIST.maybe_reverse(self),
        )
        if self.object is not None and self.object.pk is not None:
            context.setdefault("object_title", getattr(self, "object_title", str(self.object)))
            context["detail_view_url"] = Role.DETAIL.maybe_reverse(self, self.object)
            context["delete_view_url"] = Role.DELETE.maybe_reverse(self, self.object)
        return context

    def get_template_names(self) -> list[str]:
        """``<app>/<model><suffix>.html``, then ``powercrud/object<suffix>.html``."""
        if self.template_name is not None:
            return [self.template_name]
        if self.model is not None and self.template_name_suffix is not None:
            opts = self.model._meta
            return [
                f"{opts.app_label}/{opts.object_name.lower()}{self.template_name_suffix}.html",
                f"powercrud/object{self.template_name_suffix}.html",
            ]
        raise ImproperlyConfigured(
            f"{type(self).__name__} must define template_name, or model and "
            "template_name_suffix, or override get_template_names()."
        )

    def get_partial_template_names(self, name: str) -> list[str]:
        """``<app>/partials/<model>_<name>.html``, then ``powercrud/partials/<name>.html``."""
        opts = self.model._meta
        return [
            f"{opts.app_label}/partials/{opts.object_name.lower()}_{name}.html",
            f"powercrud/partials/{name}.html",
        ]

    def get_fragment_name(self) -> str | None:
        """The partial an htmx request for this role gets (None: the whole page)."""
        return FRAGMENTS.get(self.role)

    def render_to_response(self, context: dict[str, Any], status: int = 200) -> HttpResponse:
        name = self.get_fragment_name() if self.wants_fragment else None
        templates = self.get_partial_template_names(name) if name else self.get_template_names()
        return TemplateResponse(self.request, templates, context, status=status)

    # -- system checks ---------------------------------------------------------------

    @classmethod
    def check(cls) -> list[Any]:
        """System check messages about this view's configuration (see ``powercrud.checks``)."""
        from .checks import check_view

        return check_view(cls)


__all__ = ["Column", "PageLink", "PowerCRUDView", "Row"]
