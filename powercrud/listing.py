"""The list page of ``PowerCRUDView``: filter, sort, paginate, and what the table shows.

``ListMixin`` is the list half of ``PowerCRUDView``. The list is one page
(``<app>/<model>_list.html``, then ``powercrud/object_list.html``) whose results (table,
pagination, bulk toolbar) are a named partial. Sortable headers (``?o=field`` /
``?o=-field``, only fields of ``get_sortable_fields()``), the filter form (django-filter,
from ``filterset_fields``) and the pagination links (``?page=``, ``?page_size=`` from
``page_size_options``) all are plain links and GET forms; with htmx they fetch the
results partial in place and push the URL, so reload and back work.

Foreign keys shown in the table are ``select_related``, many-to-many ones prefetched:
a page costs the same few queries whatever its size. Pages come from Django's
``Paginator`` (one ``COUNT`` per page, which the filter's index serves).

The view models the templates get: ``Column`` (a header and its sort link), ``Row``
(an object, its cells and action URLs) and ``PageLink``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlencode

from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Page, Paginator
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.text import capfirst
from neapolitan.views import Role

if TYPE_CHECKING:
    from django.contrib.contenttypes.fields import GenericForeignKey

    #: What ``Options.get_field()`` returns: a field or a reverse relation (Django 5.2's
    #: stubs list a generic foreign key apart).
    ModelField: TypeAlias = models.Field | models.ForeignObjectRel | GenericForeignKey


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


def is_many(field: ModelField) -> bool:
    """A many-to-many field, or a reverse foreign key: a cell shows a list of objects."""
    return bool(field.many_to_many or field.one_to_many)


class ListMixin:
    """The list view of ``PowerCRUDView`` and the cell values its detail page shares."""

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

    # Provided by neapolitan's CRUDView and PowerCRUDView.
    model: type[models.Model]
    fields: Sequence[str] | None
    request: HttpRequest
    kwargs: dict[str, Any]
    page_kwarg: str
    allow_empty: bool
    object_list: Any

    if TYPE_CHECKING:

        @property
        def can(self) -> dict[str, bool]: ...

        def get_queryset(self) -> models.QuerySet: ...

        def get_filterset(self, queryset: models.QuerySet | None = None) -> Any: ...

        def get_context_data(self, **kwargs: Any) -> dict[str, Any]: ...

        def get_bulk_context(self, notice: tuple[str, str] | None = None) -> dict[str, Any]: ...

        def render_to_response(
            self, context: dict[str, Any], status: int = 200
        ) -> HttpResponse: ...

    # From here on the class body's ``list`` is this handler (neapolitan's name for the
    # list role), so annotations spell the builtin ``builtins.list``.
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

    def get_list_fields(self) -> builtins.list[str]:
        return list(self.list_fields if self.list_fields is not None else self.fields or ())

    def get_detail_fields(self) -> builtins.list[str]:
        return list(self.detail_fields if self.detail_fields is not None else self.fields or ())

    def get_sortable_fields(self) -> builtins.list[str]:
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

    def get_ordering(self) -> builtins.list[Any]:
        """The requested sort or the default order, then the primary key to break ties."""
        sort = self.get_sort()
        # Meta.ordering defaults to []; the stubs allow None.
        ordering: list[Any] = (
            [sort] if sort else list(self.ordering or self.model._meta.ordering or ())
        )
        names = {o.lstrip("-") for o in ordering if isinstance(o, str)}
        if not names & {"pk", self.model._meta.pk.name}:
            first = ordering[0] if ordering else ""
            descending = isinstance(first, str) and first.startswith("-")
            ordering.append("-pk" if descending else "pk")
        return ordering

    def get_page_size_options(self) -> builtins.list[int]:
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

    def get_columns(self) -> builtins.list[Column]:
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

    def get_rows(self, objects: Iterable[models.Model]) -> builtins.list[Row]:
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

    def get_page_links(self, page: Page | None) -> builtins.list[PageLink]:
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

    def model_field(self, name: str) -> ModelField | None:
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
        # Reverse relations and generic foreign keys are relations: a field remains.
        assert isinstance(field, models.Field)
        if field.choices:
            # What get_<name>_display() calls; the stubs know neither.
            return obj._get_FIELD_display(field)  # type: ignore[attr-defined]
        return getattr(obj, field.attname)


__all__ = ["Column", "ListMixin", "PageLink", "Row", "is_many"]
