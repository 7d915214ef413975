"""The test app's CRUD routes: ``path("crud/", include("tests.crudapp.urls"))``."""

from __future__ import annotations

from .views import AuthorView, BookView, GadgetView, RoleProbeView, TagView

urlpatterns = [
    *BookView.get_urls(),
    *AuthorView.get_urls(),
    *TagView.get_urls(),
    *GadgetView.get_urls(),
    *RoleProbeView.get_urls(),
]
