"""The root URLconf of the bulk tests (``pytest.mark.urls("tests.crudapp.bulk_urls")``)."""

from django.urls import include, path

from tests.urls import urlpatterns as base

from .bulk_views import (
    BookView,
    GadgetView,
    NoBulkBookView,
    QuickBookView,
    SaveEachBookView,
    SlowBookView,
    TagView,
    TrackedBookView,
)

app_patterns = [
    *BookView.get_urls(),
    *QuickBookView.get_urls(),
    *SlowBookView.get_urls(),
    *SaveEachBookView.get_urls(),
    *TrackedBookView.get_urls(),
    *GadgetView.get_urls(),
    *TagView.get_urls(),
    *NoBulkBookView.get_urls(),
]

urlpatterns = [*base, path("bulk/", include(app_patterns))]
