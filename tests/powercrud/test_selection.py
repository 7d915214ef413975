"""Selection kept in the session: toggle one, toggle the page, all matching, clear, the cap."""

import logging
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.urls import reverse
from neapolitan.views import Role

from powercrud.selection import InvalidPrimaryKey, Selection, SelectionLimitExceeded
from tests.crudapp.bulk_views import BookView, GadgetView, QuickBookView, TagView
from tests.crudapp.helpers import HX, attribute, make_books, make_tags, selected
from tests.crudapp.models import Book, Gadget, Tag

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.crudapp.bulk_urls")]


@pytest.fixture
def admin(client, django_user_model):
    user = django_user_model.objects.create_superuser("admin", password="pw")
    client.force_login(user)
    return user


def perm(codename):
    return Permission.objects.get(codename=codename, content_type__app_label="crudapp")


def select(client, url_base="book", **data):
    return client.post(reverse(f"{url_base}-select"), data, **HX)


def toolbar_count(response):
    html = response.content.decode()
    marker = 'data-count="'
    start = html.index(marker) + len(marker)
    return int(html[start : html.index('"', start)])


# -- the Selection class -------------------------------------------------------------


class FakeSession(dict):
    modified = False


def test_selection_stores_canonical_strings_in_order_and_refuses_past_its_limit():
    selection = Selection(FakeSession(), "k", Book, limit=3)
    assert selection.canonical("007") == "7"
    assert selection.add(["3", "1", "3"]) == 2
    assert selection.pks == ["3", "1"]
    with pytest.raises(SelectionLimitExceeded, match=r"select 4 rows, over the limit of 3") as exc:
        selection.add(["5", "6"])
    assert "POWERCRUD['MAX_SELECTION']" in str(exc.value)  # for the developer
    assert "MAX_SELECTION" not in exc.value.user_message  # for the user
    assert selection.pks == ["3", "1"]  # nothing was added, not truncated either
    assert selection.toggle("1") is False
    assert selection.toggle("9") is True
    assert selection.pks == ["3", "9"]
    selection.clear()
    assert "k" not in selection.session


@pytest.mark.parametrize(
    ("model", "value"), [(Book, "abc"), (Book, ""), (Gadget, "not-a-uuid"), (Tag, "")]
)
def test_invalid_primary_keys_are_refused(model, value):
    with pytest.raises(InvalidPrimaryKey):
        Selection(FakeSession(), "k", model).canonical(value)


def test_uuids_are_stored_in_their_canonical_form():
    value = uuid.uuid4()
    selection = Selection(FakeSession(), "k", Gadget)
    assert selection.canonical(str(value).upper()) == str(value)
    assert selection.canonical(value.hex) == str(value)


# -- the endpoint ---------------------------------------------------------------------


def test_toggling_one_row_selects_and_deselects_it(client, admin):
    book, other = make_books(2)
    response = select(client, action="toggle", toggle=book.pk)
    assert response.status_code == 200
    assert selected(client) == [str(book.pk)]
    html = response.content.decode()
    assert toolbar_count(response) == 1
    assert 'hx-swap-oob="true"' in html
    assert "checked" in html
    assert "Edit selected" in html
    assert "Delete selected" in html

    response = select(client, action="toggle", toggle=book.pk)
    assert selected(client) == []
    assert toolbar_count(response) == 0
    assert "Edit selected" not in response.content.decode()
    assert other.pk  # untouched


def test_toggling_a_row_that_no_longer_exists_is_refused(client, admin):
    (book,) = make_books(1)
    pk = book.pk
    book.delete()
    response = select(client, action="toggle", toggle=pk)
    assert response.status_code == 422
    assert "no longer exists" in response.content.decode()
    assert selected(client) == []


def test_a_malformed_primary_key_is_a_bad_request(client, admin):
    assert select(client, action="toggle", toggle="x1").status_code == 400
    assert select(client, action="nonsense").status_code == 400


def test_toggling_the_page_selects_all_its_rows_then_deselects_them(client, admin):
    books = make_books(5)
    page = [b.pk for b in books[:3]]
    select(client, action="toggle", toggle=books[0].pk)
    response = select(client, action="page", page=page)
    assert selected(client) == [str(pk) for pk in page]
    html = response.content.decode()
    assert html.count('hx-swap-oob="true"') == 3  # every checkbox of the page is refreshed
    select(client, action="page", page=page)
    assert selected(client) == []


def test_select_all_matching_uses_the_posted_filter_across_pages(client, admin):
    make_books(12, status=Book.Status.PUBLISHED)
    make_books(3, status=Book.Status.DRAFT)
    response = select(client, action="all", query="status=published&page=2&o=-title")
    assert response.status_code == 200
    assert toolbar_count(response) == 12
    chosen = Book.objects.filter(pk__in=selected(client))
    assert {b.status for b in chosen} == {"published"}
    assert len(chosen) == 12

    select(client, action="all", query="")
    assert len(selected(client)) == 15


def test_select_all_matching_replaces_the_selection(client, admin):
    draft = make_books(1, status=Book.Status.DRAFT)[0]
    make_books(2, status=Book.Status.PUBLISHED)
    select(client, action="toggle", toggle=draft.pk)
    select(client, action="all", query="status=published")
    assert str(draft.pk) not in selected(client)
    assert len(selected(client)) == 2


def test_clear_empties_the_selection(client, admin):
    books = make_books(3)
    select(client, action="page", page=[b.pk for b in books])
    response = select(client, action="clear", page=[b.pk for b in books])
    assert selected(client) == []
    assert toolbar_count(response) == 0
    assert "checked" not in response.content.decode()


@override_settings(POWERCRUD={"MAX_SELECTION": 5})
def test_the_cap_refuses_with_a_clear_message_and_changes_nothing(client, admin, caplog):
    books = make_books(8)
    select(client, action="page", page=[b.pk for b in books[:4]])
    with caplog.at_level(logging.INFO, logger="powercrud"):
        response = select(client, action="all", query="")
    # The developer learns which setting to raise, from the log.
    assert "POWERCRUD['MAX_SELECTION']" in caplog.text
    assert response.status_code == 422
    text = response.content.decode()
    assert "That would select 8 rows, over the limit of 5" in text
    assert "MAX_SELECTION" not in text  # a setting's name means nothing to the user
    assert len(selected(client)) == 4  # unchanged, not truncated to 5

    response = select(client, action="page", page=[b.pk for b in books[3:]])
    assert response.status_code == 422
    assert len(selected(client)) == 4
    select(client, action="toggle", toggle=books[4].pk)
    assert len(selected(client)) == 5
    assert select(client, action="toggle", toggle=books[5].pk).status_code == 422
    assert len(selected(client)) == 5


def test_uuid_primary_keys(client, admin):
    gadgets = [Gadget.objects.create(name=f"g{n}") for n in range(3)]
    response = select(client, "gadget", action="toggle", toggle=str(gadgets[0].pk).upper())
    assert response.status_code == 200
    assert selected(client, GadgetView) == [str(gadgets[0].pk)]
    select(client, "gadget", action="page", page=[str(g.pk) for g in gadgets])
    assert set(selected(client, GadgetView)) == {str(g.pk) for g in gadgets}
    select(client, "gadget", action="all", query="kind=toy")
    assert selected(client, GadgetView) == []


def test_string_primary_keys_with_any_characters(client, admin):
    tags = make_tags("sci fi/é & <b>", "007", "a'b\"c")
    for tag in tags:
        assert select(client, "tag", action="toggle", toggle=tag.pk).status_code == 200
    assert selected(client, TagView) == [tag.pk for tag in tags]
    response = client.get(reverse("tag-list"))
    html = response.content.decode()
    assert html.count(" checked ") == 3
    assert 'value="sci fi/é &amp; &lt;b&gt;"' in html
    assert "<b>" not in html


def test_each_view_keeps_its_own_selection(client, admin):
    books = make_books(3)
    select(client, "book", action="toggle", toggle=books[0].pk)
    select(client, "quickbook", action="toggle", toggle=books[1].pk)
    assert selected(client, BookView) == [str(books[0].pk)]
    assert selected(client, QuickBookView) == [str(books[1].pk)]
    select(client, "quickbook", action="clear")
    assert selected(client, BookView) == [str(books[0].pk)]


def test_the_list_shows_the_toolbar_and_checks_the_selected_rows(client, admin):
    books = make_books(3)
    select(client, action="toggle", toggle=books[1].pk)
    response = client.get(reverse("book-list"))
    html = response.content.decode()
    assert 'class="pc-bulk-toolbar"' in html
    assert html.count('class="pc-bulk-check"') == 3
    assert html.count(" checked ") == 1
    assert f'name="page" value="{books[0].pk}"' in html
    # Every selection request queues on the toolbar's wrapper (which responses never
    # replace): parallel requests would lose each other's session writes.
    wrapper = attribute(html.split('class="pc-bulk"', 1)[1], "id")
    assert html.count(f'hx-sync="#{wrapper}:queue all"') == 3 + 3  # buttons + checkboxes


def test_without_javascript_the_endpoint_redirects_back_with_the_selection_changed(client, admin):
    books = make_books(4)
    next_url = reverse("book-list") + "?status=draft"
    response = client.post(
        reverse("book-select"),
        {
            "action": "set_page",
            "page": [b.pk for b in books[:3]],
            "pk": [books[0].pk, books[2].pk],
            "next": next_url,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == next_url
    assert selected(client) == [str(books[0].pk), str(books[2].pk)]
    client.post(
        reverse("book-select"),
        {"action": "set_page", "page": [b.pk for b in books[:3]], "pk": [books[1].pk]},
    )
    assert selected(client) == [str(books[1].pk)]


def test_selection_needs_a_bulk_permission(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw")
    user.user_permissions.add(perm("view_book"))
    client.force_login(user)
    (book,) = make_books(1)
    assert select(client, action="toggle", toggle=book.pk).status_code == 403
    html = client.get(reverse("book-list")).content.decode()
    assert "pc-bulk-toolbar" not in html
    user.user_permissions.add(perm("delete_book"))
    assert select(client, action="toggle", toggle=book.pk).status_code == 200
    html = client.get(reverse("book-list")).content.decode()
    assert "Delete selected" in html
    assert "Edit selected" not in html


def test_only_post_is_allowed_and_views_without_bulk_fields_have_no_endpoints(client, admin):
    assert client.get(reverse("book-select")).status_code == 405
    urls = {pattern.name for pattern in NoBulk.get_urls()}
    assert "plainbook-select" not in urls


class NoBulk(BookView):
    bulk_fields = []
    url_base = "nobulk"


def test_selecting_costs_a_fixed_number_of_queries(client, admin, django_assert_num_queries):
    books = make_books(30)
    select(client, action="toggle", toggle=books[0].pk)  # the session row exists now
    # session, user, the rows that exist, the rows for their checkboxes, and the session
    # save (a savepoint, the UPDATE, its release)
    with django_assert_num_queries(7):
        select(client, action="page", page=[b.pk for b in books[:25]])
    assert len(selected(client)) == 25


def test_the_lists_bulk_context_costs_no_query(client, admin, rf, django_assert_num_queries):
    books = make_books(3)
    select(client, action="toggle", toggle=books[2].pk)
    request = rf.get(reverse("book-list") + "?status=draft&page=2")
    request.user = admin
    request.session = client.session
    assert request.session.get("_auth_user_id")  # loaded, as the auth middleware does
    view = BookView()
    view.setup(request)
    view.role = Role.LIST
    with django_assert_num_queries(0):
        bulk = view.get_bulk_context()["bulk"]
    assert (bulk.count, bulk.selected, bulk.query) == (1, {str(books[2].pk)}, "status=draft")
    assert bulk.next == "/bulk/book/?status=draft&page=2"
    assert bulk.row(books[2]).checked
    assert not bulk.row(books[0]).checked
