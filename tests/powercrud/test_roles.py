"""PowerRole: POST-only endpoints with their own URLs and permissions; HEAD on GET routes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.urls import resolve, reverse
from neapolitan.views import CRUDView, Role

from powercrud.roles import PowerRole, get_power_urls, permission_action, supported_roles
from powercrud.views import PowerCRUDView
from tests.crudapp.factories import make_book, make_gadget, make_tag, make_user
from tests.crudapp.models import Gadget, Tag
from tests.crudapp.views import RoleProbeView

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.crudapp.root_urls")]
POST_ROLES = [PowerRole.SELECT, PowerRole.BULK_EDIT, PowerRole.BULK_DELETE]


def role_url(role: PowerRole) -> str:
    kwargs = {"job_pk": 7} if role is PowerRole.BULK_STATUS else {}
    return role.reverse(RoleProbeView, **kwargs)


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("admin", "superuser"))
    return client


def test_post_roles_declare_post_handlers_only():
    assert PowerRole.SELECT.handlers() == {"post": "post_select"}
    assert PowerRole.BULK_EDIT.handlers() == {"post": "post_bulk_edit"}
    assert PowerRole.BULK_DELETE.handlers() == {"post": "post_bulk_delete"}
    assert PowerRole.BULK_STATUS.handlers() == {"get": "bulk_status"}


def test_each_role_has_its_own_url_pattern_and_name():
    assert [role_url(role) for role in PowerRole] == [
        "/crud/probe/select/",
        "/crud/probe/bulk-edit/",
        "/crud/probe/bulk-delete/",
        "/crud/probe/bulk-status/7/",
    ]
    for role in PowerRole:
        match = resolve(role_url(role))
        assert match.url_name == f"probe-{role.value}"
        assert match.func.view_class is RoleProbeView


@pytest.mark.parametrize("role", POST_ROLES)
def test_post_endpoints_answer_post_and_refuse_get_and_head(admin_client, role):
    url = role_url(role)
    response = admin_client.post(url)
    assert response.status_code == 200
    assert response.json() == {"role": role.value, "method": "POST"}
    for method in (admin_client.get, admin_client.head, admin_client.put, admin_client.delete):
        refused = method(url)
        assert refused.status_code == 405, method
        assert refused["Allow"] == "POST, OPTIONS"


def test_the_status_endpoint_answers_get_and_head_only(admin_client):
    url = role_url(PowerRole.BULK_STATUS)
    assert admin_client.get(url).json() == {"role": "bulk-status", "method": "GET", "job_pk": 7}
    head = admin_client.head(url)
    assert (head.status_code, head.content) == (200, b"")
    assert admin_client.post(url).status_code == 405


def test_head_works_on_every_get_route(admin_client):
    book = make_book()
    tag = make_tag()
    gadget = make_gadget()
    urls = [
        reverse("book-list"),
        reverse("book-detail", args=[book.pk]),
        reverse("book-create"),
        reverse("book-update", args=[book.pk]),
        reverse("book-delete", args=[book.pk]),
        reverse("tag-detail", args=[tag.pk]),
        reverse("gadget-update", args=[gadget.pk]),
    ]
    for url in urls:
        response = admin_client.head(url)
        assert (response.status_code, response.content) == (200, b""), url
        assert admin_client.get(url).content, url


def test_the_list_refuses_post(admin_client):
    response = admin_client.post(reverse("book-list"))
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize(
    ("perm", "allowed"),
    [
        ("view_gadget", {PowerRole.SELECT, PowerRole.BULK_STATUS}),
        ("change_gadget", set(PowerRole) - {PowerRole.BULK_DELETE}),
        ("delete_gadget", {PowerRole.BULK_DELETE}),
    ],
)
def test_power_roles_need_their_model_permission(client, perm, allowed):
    client.force_login(make_user("u", f"crudapp.{perm}"))
    for role in PowerRole:
        method = client.get if role is PowerRole.BULK_STATUS else client.post
        status = method(role_url(role)).status_code
        assert (status == 200) is (role in allowed), (role, status)


def test_anonymous_posts_are_sent_to_log_in(client):
    response = client.post(role_url(PowerRole.SELECT))
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/crud/probe/select/"


def test_permission_actions_cover_every_role():
    assert {role: permission_action(role) for role in Role} == {
        Role.LIST: "view",
        Role.DETAIL: "view",
        Role.CREATE: "add",
        Role.UPDATE: "change",
        Role.DELETE: "delete",
    }
    assert [permission_action(role) for role in PowerRole] == ["view", "change", "delete", "view"]


class SelectOnly(CRUDView):
    """A plain neapolitan view that implements only the selection handler."""

    model = Tag
    fields = ["slug", "name"]
    url_base = "selectonly"

    def post_select(self, request, *args, **kwargs):
        return HttpResponse("selected")


def test_only_implemented_roles_get_urls_and_naming_another_is_an_error():
    assert supported_roles(SelectOnly) == [PowerRole.SELECT]
    assert [p.name for p in get_power_urls(SelectOnly)] == ["selectonly-select"]
    with pytest.raises(ImproperlyConfigured, match=r"no post_bulk_edit\(\) method"):
        get_power_urls(SelectOnly, [PowerRole.BULK_EDIT])


class TagProbe(PowerCRUDView):
    """A string primary key: ``tagprobe/select/`` could be read as a detail URL."""

    model = Tag
    fields = ["slug", "name"]
    url_base = "tagprobe"

    @classmethod
    def get_bulk_urls(cls):
        return cls.get_power_urls([PowerRole.SELECT])


def test_power_urls_come_before_the_detail_pattern_a_string_key_would_shadow():
    patterns = TagProbe.get_urls()
    assert [p.name for p in patterns] == [
        "tagprobe-select",
        "tagprobe-list",
        "tagprobe-create",
        "tagprobe-detail",
        "tagprobe-update",
        "tagprobe-delete",
    ]
    assert str(patterns[3].pattern) == "tagprobe/<str:pk>/"


def test_get_urls_builds_the_roles_it_is_given():
    names = [p.name for p in RoleProbeView.get_urls([Role.LIST, PowerRole.BULK_EDIT])]
    assert names == ["probe-bulk-edit", "probe-list"]
    assert Gadget._meta.pk.name == "id"
