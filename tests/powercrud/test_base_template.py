"""The frame powercrud's pages extend: the project's base.html, or powercrud's own.

A new project has no base.html; with the default ``base_template`` the pages then
extend ``powercrud/base.html`` instead of failing with TemplateDoesNotExist.
"""

from __future__ import annotations

import copy

from django.conf import settings
from django.test import RequestFactory, override_settings
from neapolitan.views import Role

from powercrud.views import PowerCRUDView
from tests.crudapp.models import Book


class DefaultFrameView(PowerCRUDView):
    model = Book
    fields = ["title"]


class OwnFrameView(DefaultFrameView):
    base_template = "crudapp/base.html"


def templates_with_base(directory):
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [directory]
    return templates


def test_without_a_base_html_the_pages_extend_powercrud_s_own_frame():
    assert DefaultFrameView().get_base_template() == "powercrud/base.html"


def test_a_project_s_base_html_is_used_when_there_is_one(tmp_path):
    (tmp_path / "base.html").write_text(
        "{% block title %}{% endblock %}{% block content %}{% endblock %}"
    )
    with override_settings(TEMPLATES=templates_with_base(tmp_path)):
        assert DefaultFrameView().get_base_template() == "base.html"


def test_a_named_base_template_is_used_as_it_is():
    assert OwnFrameView().get_base_template() == "crudapp/base.html"


def test_the_fallback_frame_renders_a_list_page(admin_user, db):
    Book.objects.create(title="Dune")
    request = RequestFactory().get("/")
    request.user = admin_user
    request.htmx = False
    request.session = {}
    response = DefaultFrameView.as_view(role=Role.LIST)(request)
    response.render()
    page = response.content.decode()
    assert page.startswith("<!doctype html>")
    assert "<title>Books</title>" in page
    assert "Dune" in page
