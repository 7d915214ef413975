"""PowerCRUDViews with bulk operations, as the bulk tests route them (``bulk_urls``)."""

from __future__ import annotations

from powercrud.views import PowerCRUDView

from .models import Book, Gadget, Tag

BASE = "crudapp/base.html"
TRACKER = "bulk"  # configured in ASYNC_QUEUE["TRACKERS"] (tests/settings.py)


class BookView(PowerCRUDView):
    model = Book
    fields = ["title", "status", "in_print", "price", "author", "tags"]
    filterset_fields = ["status", "in_print", "author"]
    bulk_fields = ["status", "in_print", "price", "author", "tags"]
    paginate_by = 10
    base_template = BASE


class QuickBookView(BookView):
    """The same model from another view (its own selection); jobs from 5 objects up."""

    url_base = "quickbook"
    bulk_async_threshold = 5


class SlowBookView(BookView):
    """Its bulk edit is a project's own job function (slow enough to watch its progress)."""

    url_base = "slowbook"
    bulk_edit_job = "tests.crudapp.tasks.slow_bulk_edit"


class SaveEachBookView(BookView):
    """Writes with save() per object (the path taken when receivers listen)."""

    url_base = "saveeach"
    bulk_edit_job = "tests.crudapp.tasks.bulk_edit_saving_each"


class TrackedBookView(BookView):
    """Routes its jobs to the tracker model by configuration only."""

    url_base = "trackedbook"
    bulk_async_threshold = 1
    async_manager_config = {"tracker": TRACKER, "queue": "bulk"}


class GadgetView(PowerCRUDView):
    model = Gadget
    fields = ["name", "kind", "active", "maker", "tags"]
    filterset_fields = ["kind", "active"]
    bulk_fields = ["kind", "active", "maker", "tags"]
    base_template = BASE


class TagView(PowerCRUDView):
    model = Tag
    fields = ["slug", "name", "color", "archived", "owner"]
    filterset_fields = ["color"]
    bulk_fields = ["color", "archived", "owner"]
    base_template = BASE


class NoBulkBookView(PowerCRUDView):
    model = Book
    fields = ["title", "status"]
    url_base = "plainbook"
    base_template = BASE
