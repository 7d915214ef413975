"""PowerCRUDViews over the test models, and a probe of the POST-only power roles."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern

from powercrud.views import PowerCRUDView

from .models import Author, Book, Gadget, Tag

BASE = "crudapp/base.html"


class BookView(PowerCRUDView):
    model = Book
    fields = ["title", "author", "status", "price", "published", "in_print", "tags"]
    filterset_fields = {"title": ["icontains"], "status": ["exact"], "author": ["exact"]}
    paginate_by = 10
    base_template = BASE


class AuthorView(PowerCRUDView):
    model = Author
    fields = ["name"]
    base_template = BASE


class TagView(PowerCRUDView):
    model = Tag
    fields = ["slug", "name"]
    base_template = BASE


class GadgetView(PowerCRUDView):
    model = Gadget
    fields = ["name", "color"]
    filterset_fields = ["color"]
    base_template = BASE


class RoleProbeView(PowerCRUDView):
    """Implements every PowerRole handler, answering which one ran."""

    model = Gadget
    fields = ["name", "color"]
    url_base = "probe"
    base_template = BASE

    @classmethod
    def get_bulk_urls(cls) -> list[URLPattern]:
        return cls.get_power_urls()

    def answer(self, **extra: Any) -> HttpResponse:
        return JsonResponse({"role": self.role.value, "method": self.request.method, **extra})

    def post_select(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.answer()

    def post_bulk_edit(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.answer()

    def post_bulk_delete(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.answer()

    def bulk_status(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.answer(job_pk=kwargs["job_pk"])
