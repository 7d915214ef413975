"""powercrud's system checks."""

from __future__ import annotations

import pytest
from django_htmx.middleware import HtmxMiddleware

from powercrud.checks import (
    check_htmx_middleware,
    check_settings,
    check_view,
    check_views,
    routed_views,
)
from powercrud.conf import powercrud_settings
from powercrud.views import PowerCRUDView
from tests.crudapp.models import Book
from tests.crudapp.views import AuthorView, BookView, GadgetView, RoleProbeView, TagView


class CustomHtmxMiddleware(HtmxMiddleware):
    pass


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_htmx_middleware_missing_is_an_error(settings):
    assert check_htmx_middleware() == []
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "htmx" not in m]
    (error,) = check_htmx_middleware()
    assert error.id == "powercrud.E001"
    assert "django_htmx.middleware.HtmxMiddleware" in error.hint


def test_a_subclass_of_the_htmx_middleware_counts(settings):
    settings.MIDDLEWARE = [
        *(m for m in settings.MIDDLEWARE if "htmx" not in m),
        "tests.powercrud.test_checks.CustomHtmxMiddleware",
    ]
    assert check_htmx_middleware() == []


def test_filtering_without_django_filters_installed_is_an_error(monkeypatch):
    assert check_view(BookView) == []
    monkeypatch.setattr("powercrud.checks.apps.is_installed", lambda name: name != "django_filters")
    (error,) = check_view(BookView)
    assert error.id == "powercrud.E002"
    assert "tests.crudapp.views.BookView" in error.msg
    assert check_view(AuthorView) == []  # no filters, no error


def make_view(**attributes) -> type[PowerCRUDView]:
    return type("Configured", (PowerCRUDView,), {"model": Book, "fields": ["title"], **attributes})


def test_ordering_and_sortable_fields_must_name_fields():
    assert check_view(make_view(ordering=["-published", "pk", "author__name"])) == []
    errors = check_view(make_view(ordering=["-nope"], sortable_fields=["title", "missing"]))
    assert ids(errors) == ["powercrud.E003", "powercrud.E003"]
    assert "'-nope'" in errors[0].msg
    assert "'missing'" in errors[1].msg


@pytest.mark.parametrize(
    "attributes",
    [{"paginate_by": 0}, {"page_size_options": (10, -1)}, {"page_size_options": ("25",)}],
)
def test_page_sizes_must_be_positive_integers(attributes):
    assert ids(check_view(make_view(**attributes))) == ["powercrud.E004"]


def test_unpaginated_views_ignore_the_page_size_options():
    assert check_view(make_view(paginate_by=None, page_size_options=(0,))) == []


@pytest.mark.urls("tests.crudapp.root_urls")
def test_the_url_check_covers_every_routed_view(monkeypatch):
    assert set(routed_views()) == {BookView, AuthorView, TagView, GadgetView, RoleProbeView}
    assert check_views() == []
    monkeypatch.setattr(GadgetView, "ordering", ["-nope"])
    assert ids(check_views()) == ["powercrud.E003"]


def test_the_settings_are_read_on_access_with_defaults(settings):
    assert powercrud_settings.MAX_SELECTION == 10_000
    settings.POWERCRUD = {"MAX_SELECTION": 7}
    assert powercrud_settings.MAX_SELECTION == 7
    with pytest.raises(AttributeError, match="Unknown POWERCRUD setting 'NOPE'"):
        powercrud_settings.NOPE  # noqa: B018


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([("MAX_SELECTION", 5)], "settings.POWERCRUD must be a dict, not list."),
        ({"MAX_SELECT": 5}, "settings.POWERCRUD has an unknown key 'MAX_SELECT'"),
        ({"MAX_SELECTION": 0}, "POWERCRUD['MAX_SELECTION'] must be a positive integer; got 0."),
        ({"MAX_SELECTION": "5"}, "must be a positive integer; got '5'."),
        ({"MAX_SELECTION": True}, "must be a positive integer; got True."),
    ],
)
def test_settings_that_cannot_work_are_errors(settings, value, message):
    assert check_settings() == []
    settings.POWERCRUD = value
    (error,) = check_settings()
    assert error.id == "powercrud.E005"
    assert message in error.msg
    assert "MAX_SELECTION" in error.hint
