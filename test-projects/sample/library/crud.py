"""The catalogue's CRUD pages: PowerCRUDViews wired under ``/sample/`` in ``sample/urls.py``."""

from __future__ import annotations

from powercrud.views import PowerCRUDView

from .models import Author, BigBook, Book

# 100 rows or more (powercrud's default threshold) are edited by a job, paced so that
# its progress modal has something to show (library.tasks.PacedBulkEdit).
PACED_BULK_EDIT = "library.tasks.paced_bulk_edit"


class AuthorView(PowerCRUDView):
    model = Author
    url_base = "authors"
    fields = ["name"]
    filterset_fields = {"name": ["icontains"]}


class BookView(PowerCRUDView):
    model = Book
    url_base = "books"
    fields = ["title", "author", "price", "status", "tags"]
    list_fields = ["title", "author", "price", "status", "tags", "created"]
    detail_fields = list_fields
    filterset_fields = {
        "title": ["icontains"],
        "status": ["exact"],
        "author": ["exact"],
        "tags": ["exact"],
    }
    bulk_fields = ["status", "author", "price", "tags"]
    bulk_edit_job = PACED_BULK_EDIT


class BigBookView(PowerCRUDView):
    model = BigBook
    url_base = "bigbooks"
    fields = ["title", "author", "price", "status", "published"]
    filterset_fields = {"title": ["icontains"], "status": ["exact"], "author": ["exact"]}
    ordering = ["-published"]
    bulk_fields = ["status", "price", "author"]
    bulk_edit_job = PACED_BULK_EDIT


urlpatterns = [*AuthorView.get_urls(), *BookView.get_urls(), *BigBookView.get_urls()]
