"""PowerCRUDView through the test client: every route, plain and htmx, and permissions."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from neapolitan.views import Role

from powercrud.views import PowerCRUDView
from tests.crudapp.factories import (
    make_author,
    make_book,
    make_books,
    make_gadget,
    make_tag,
    make_user,
)
from tests.crudapp.models import Author, Book, Gadget, Tag
from tests.crudapp.views import AuthorView, BookView

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.crudapp.root_urls")]
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("admin", "superuser"))
    return client


def titles(response) -> list[str]:
    return [row.object.title for row in response.context["rows"]]


# -- the list ------------------------------------------------------------------------


def test_the_list_is_a_full_page_with_filters_table_and_pagination(admin_client):
    make_books(12)
    response = admin_client.get(reverse("book-list"))
    assert response.status_code == 200
    assert [t.name for t in response.templates][:1] == ["powercrud/object_list.html"]
    html = response.content.decode()
    assert "<html" in html
    assert 'id="pc-filters"' in html
    assert 'id="pc-results"' in html
    assert 'id="pc-modal"' in html
    assert "12 books · page 1 of 2" in html
    assert titles(response) == [f"Book {n:03d}" for n in range(10)]
    assert "HX-Request" in response["Vary"]


def test_an_htmx_request_gets_only_the_results_partial(admin_client):
    make_books(3)
    response = admin_client.get(reverse("book-list"), {"o": "-title"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="pc-results"')
    assert "<html" not in html
    assert 'id="pc-filters"' not in html
    assert titles(response) == ["Book 002", "Book 001", "Book 000"]


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_HX_HISTORY_RESTORE_REQUEST": "true"},
        {"HTTP_HX_BOOSTED": "true"},
    ],
)
def test_history_restores_and_boosted_requests_get_the_whole_page(admin_client, headers):
    response = admin_client.get(reverse("book-list"), **HTMX, **headers)
    assert "<html" in response.content.decode()


def test_sorting_follows_o_and_only_allowed_fields(admin_client):
    make_books(5)
    url = reverse("book-list")
    assert titles(admin_client.get(url, {"o": "-title"}))[0] == "Book 004"
    by_price = admin_client.get(url, {"o": "price"})
    prices = [row.object.price for row in by_price.context["rows"]]
    assert prices == sorted(prices)
    # Unknown fields, many-to-many fields and lookups fall back to the default order.
    for bogus in ["nope", "tags", "author__name", "-", "title; DROP TABLE"]:
        assert titles(admin_client.get(url, {"o": bogus}))[0] == "Book 000", bogus


def test_column_headers_link_to_the_other_direction_and_keep_the_filter(admin_client):
    make_books(3)
    response = admin_client.get(reverse("book-list"), {"o": "title", "status": "draft", "page": 1})
    columns = {column.name: column for column in response.context["columns"]}
    assert columns["title"].direction == "asc"
    assert columns["title"].aria_sort == "ascending"
    assert columns["title"].sort_url == "/crud/book/?o=-title&status=draft"
    assert columns["price"].sort_url == "/crud/book/?o=price&status=draft"
    assert columns["tags"].sort_url == ""  # many-to-many: not sortable
    html = response.content.decode()
    assert 'hx-get="/crud/book/?o=-title&amp;status=draft" hx-push-url="true"' in html


def test_filters_narrow_the_list(admin_client):
    books = make_books(9)
    url = reverse("book-list")
    published = admin_client.get(url, {"status": "published"})
    assert {row.object.status for row in published.context["rows"]} == {"published"}
    assert published.context["paginator"].count == 3
    by_title = admin_client.get(url, {"title__icontains": "ook 00"})
    assert len(by_title.context["rows"]) == 9
    by_author = admin_client.get(url, {"author": books[1].author_id})
    assert {row.object.author_id for row in by_author.context["rows"]} == {books[1].author_id}
    # An invalid filter value is ignored, not an error.
    assert admin_client.get(url, {"author": "x"}).status_code == 200


def test_the_filter_form_carries_the_sort_and_page_size(admin_client):
    make_books(3)
    response = admin_client.get(reverse("book-list"), {"o": "-price", "page_size": 25})
    html = response.content.decode()
    assert '<input type="hidden" form="pc-filters" name="o" value="-price">' in html
    assert '<input type="hidden" form="pc-filters" name="page_size" value="25">' in html


def test_page_size_is_allowlisted_and_pages_are_clamped(admin_client):
    make_books(30)
    url = reverse("book-list")
    assert len(admin_client.get(url, {"page_size": 25}).context["rows"]) == 25
    assert len(admin_client.get(url, {"page_size": 7}).context["rows"]) == 10
    assert len(admin_client.get(url, {"page_size": "all"}).context["rows"]) == 10
    assert admin_client.get(url, {"page": 99}).context["page_obj"].number == 3
    assert admin_client.get(url, {"page": "last"}).context["page_obj"].number == 3
    assert admin_client.get(url, {"page": "x"}).context["page_obj"].number == 1
    response = admin_client.get(url, {"page": 2, "status": "", "o": "title"})
    assert response.context["page_size_options"] == [10, 25, 50, 100]
    assert response.context["page_size_state"] == [("o", "title")]
    links = response.context["page_links"]
    assert [(link.number, link.current) for link in links] == [(1, False), (2, True), (3, False)]
    assert links[0].url == "/crud/book/?page=1&o=title"  # empty parameters are dropped
    assert response.context["previous_page_url"] == "/crud/book/?page=1&o=title"
    assert response.context["next_page_url"] == "/crud/book/?page=3&o=title"


def test_the_list_costs_the_same_queries_whatever_the_number_of_rows(
    admin_client, django_assert_num_queries
):
    """Pinned: session, user, the author filter's choices, the count, the page, the tags."""
    url = reverse("book-list")
    query = {"status": "published", "o": "-price", "page": 2, "page_size": 25}
    make_books(300, authors=20, tags=5)
    with django_assert_num_queries(6):
        big = admin_client.get(url, query)
    assert len(big.context["rows"]) == 25
    Book.objects.filter(pk__in=list(Book.objects.values_list("pk", flat=True)[60:])).delete()
    with django_assert_num_queries(6):
        small = admin_client.get(url, query)
    assert small.context["paginator"].count == 20
    assert (small.context["page_obj"].number, len(small.context["rows"])) == (1, 20)


def test_rows_show_choices_foreign_keys_many_to_many_and_booleans(admin_client):
    tags = [make_tag("a", "Alpha"), make_tag("b", "Beta")]
    make_book("Dune", make_author("Frank"), status="published", in_print=False, tags=tags)
    response = admin_client.get(reverse("book-list"))
    (row,) = response.context["rows"]
    assert row.cells[1:3] == [Author.objects.get(), "Published"]
    assert row.cells[5:] == [False, "Alpha, Beta"]
    html = response.content.decode()
    assert "<td>Frank</td>" in html
    assert "<td>Alpha, Beta</td>" in html
    assert "<td>No</td>" in html


def test_an_empty_list_says_so(admin_client):
    response = admin_client.get(reverse("book-list"))
    assert "No books found." in response.content.decode()


# -- detail, create, update, delete --------------------------------------------------------


def test_detail_is_a_page_or_the_modal_partial(admin_client):
    book = make_book("Dune", tags=[make_tag()])
    url = reverse("book-detail", args=[book.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "<html" in page.content.decode()
    assert ("Tags", "Science fiction") in page.context["details"]
    partial = admin_client.get(url, **HTMX)
    html = partial.content.decode()
    assert "<html" not in html
    assert 'id="pc-detail-panel"' in html
    assert "data-pc-close" in html
    assert f'hx-get="/crud/book/{book.pk}/edit/"' in html


def test_create_form_in_the_modal_and_as_a_page(admin_client):
    url = reverse("book-create")
    page = admin_client.get(url)
    assert "<html" in page.content.decode()
    assert "hx-post" not in page.content.decode()
    partial = admin_client.get(url, **HTMX).content.decode()
    assert "<html" not in partial
    assert f'hx-post="{url}" hx-target="#pc-modal-content"' in partial


def book_data(author: Author, **changes: object) -> dict[str, object]:
    data = {"title": "Dune", "author": author.pk, "status": "draft", "price": "9.99"}
    data.update(changes)
    return data


def test_invalid_input_answers_422_with_the_errors_in_place(admin_client):
    author = make_author()
    url = reverse("book-create")
    response = admin_client.post(url, book_data(author, title="", price="x"), **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert "<html" not in html
    assert "This field is required." in html
    assert "Enter a number." in html
    plain = admin_client.post(url, book_data(author, title=""))
    assert plain.status_code == 422
    assert "<html" in plain.content.decode()
    assert not Book.objects.exists()


def test_a_successful_htmx_create_closes_the_modal_and_refreshes_the_table(admin_client):
    author = make_author()
    tag = make_tag()
    response = admin_client.post(reverse("book-create"), book_data(author, tags=[tag.pk]), **HTMX)
    assert response.status_code == 204
    events = json.loads(response["HX-Trigger"])
    assert list(events) == ["powercrud:changed", "powercrud:close-modal"]
    assert events["powercrud:changed"] == {"message": "Book “Dune” created."}
    book = Book.objects.get()
    assert list(book.tags.all()) == [tag]


def test_a_successful_plain_create_redirects_to_the_object(admin_client):
    response = admin_client.post(reverse("book-create"), book_data(make_author()))
    book = Book.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("book-detail", args=[book.pk])


def test_update_in_the_modal_and_as_a_page(admin_client):
    book = make_book("Dune", price=Decimal("1.00"))
    url = reverse("book-update", args=[book.pk])
    form = admin_client.get(url, **HTMX)
    assert form.status_code == 200
    assert 'value="Dune"' in form.content.decode()
    assert "Edit Dune" in form.content.decode()
    response = admin_client.post(url, book_data(book.author, title="Dune Messiah"), **HTMX)
    assert response.status_code == 204
    book.refresh_from_db()
    assert (book.title, book.price) == ("Dune Messiah", Decimal("9.99"))
    plain = admin_client.post(url, book_data(book.author, title="Children of Dune"))
    assert plain.status_code == 302
    assert plain["Location"] == reverse("book-detail", args=[book.pk])


def test_invalid_update_keeps_the_old_title_in_the_heading(admin_client):
    book = make_book("Dune")
    url = reverse("book-update", args=[book.pk])
    response = admin_client.post(url, book_data(book.author, title="x" * 300), **HTMX)
    assert response.status_code == 422
    assert "Edit Dune" in response.content.decode()


def test_delete_confirms_then_deletes(admin_client):
    book = make_book("Dune")
    url = reverse("book-delete", args=[book.pk])
    confirm = admin_client.get(url, **HTMX)
    assert confirm.status_code == 200
    assert "Delete book “Dune”?" in confirm.content.decode()
    response = admin_client.post(url, **HTMX)
    assert response.status_code == 204
    assert json.loads(response["HX-Trigger"])["powercrud:changed"] == {
        "message": "Book “Dune” deleted."
    }
    assert not Book.objects.exists()
    other = make_book("Emma")
    plain = admin_client.post(reverse("book-delete", args=[other.pk]))
    assert plain.status_code == 302
    assert plain["Location"] == reverse("book-list")


def test_deleting_a_protected_object_answers_409_and_names_what_refers_to_it(admin_client):
    book = make_book("Dune", make_author("Frank"))
    response = admin_client.post(reverse("author-delete", args=[book.author_id]), **HTMX)
    assert response.status_code == 409
    html = response.content.decode()
    assert "Frank cannot be deleted" in html
    assert "<li>Dune</li>" in html
    assert Author.objects.exists()


def test_string_and_uuid_primary_keys_route_and_edit(admin_client):
    tag = make_tag("sci-fi", "SF")
    gadget = make_gadget("Gizmo")
    assert reverse("tag-update", args=[tag.pk]) == "/crud/tag/sci-fi/edit/"
    assert reverse("gadget-update", args=[gadget.pk]) == f"/crud/gadget/{gadget.pk}/edit/"
    response = admin_client.post(
        reverse("tag-update", args=[tag.pk]), {"slug": "sci-fi", "name": "Sci-fi"}, **HTMX
    )
    assert response.status_code == 204
    assert Tag.objects.get().name == "Sci-fi"
    response = admin_client.post(
        reverse("gadget-update", args=[gadget.pk]), {"name": "Gadget", "color": "blue"}, **HTMX
    )
    assert response.status_code == 204
    assert Gadget.objects.get().color == "blue"
    assert admin_client.get(reverse("gadget-list"), {"color": "blue"}).status_code == 200
    assert admin_client.get("/crud/gadget/not-a-uuid/").status_code == 404
    assert admin_client.post(reverse("tag-delete", args=[tag.pk]), **HTMX).status_code == 204


# -- permissions ---------------------------------------------------------------------------


def all_routes(book: Book) -> list[tuple[str, str, str]]:
    """(method, url, permission action) for every route of BookView."""
    return [
        ("get", reverse("book-list"), "view"),
        ("get", reverse("book-detail", args=[book.pk]), "view"),
        ("get", reverse("book-create"), "add"),
        ("post", reverse("book-create"), "add"),
        ("get", reverse("book-update", args=[book.pk]), "change"),
        ("post", reverse("book-update", args=[book.pk]), "change"),
        ("get", reverse("book-delete", args=[book.pk]), "delete"),
        ("post", reverse("book-delete", args=[book.pk]), "delete"),
    ]


def test_anonymous_users_are_sent_to_log_in(client):
    book = make_book()
    for method, url, _ in all_routes(book):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(f"/accounts/login/?next={url}"), url
        htmx = getattr(client, method)(
            url, HTTP_HX_CURRENT_URL="http://testserver/crud/book/", **HTMX
        )
        assert htmx.status_code == 200
        assert htmx["HX-Redirect"] == "/accounts/login/?next=/crud/book/"
    assert Book.objects.count() == 1


@pytest.mark.parametrize("action", ["view", "add", "change", "delete"])
def test_each_route_needs_its_model_permission(client, action):
    book = make_book()
    client.force_login(make_user("u", f"crudapp.{action}_book"))
    for method, url, needed in all_routes(book):
        response = getattr(client, method)(url, book_data(book.author) if method == "post" else {})
        allowed = needed == action or (needed == "view" and action == "change")
        assert (response.status_code != 403) is allowed, (method, url, response.status_code)


def test_buttons_follow_the_permissions(client):
    book = make_book("Dune")
    edit = f'href="{reverse("book-update", args=[book.pk])}"'
    delete = f'href="{reverse("book-delete", args=[book.pk])}"'
    new = f'href="{reverse("book-create")}"'
    client.force_login(make_user("viewer", "crudapp.view_book"))
    html = client.get(reverse("book-list")).content.decode()
    assert (edit in html, delete in html, new in html) == (False, False, False)
    detail = client.get(reverse("book-detail", args=[book.pk])).content.decode()
    assert edit not in detail
    client.force_login(make_user("editor", "crudapp.change_book", "crudapp.add_book"))
    html = client.get(reverse("book-list")).content.decode()
    assert (edit in html, delete in html, new in html) == (True, False, True)
    client.force_login(make_user("remover", "crudapp.view_book", "crudapp.delete_book"))
    html = client.get(reverse("book-list")).content.decode()
    assert (edit in html, delete in html, new in html) == (False, True, False)


# -- templates -----------------------------------------------------------------------------


def test_templates_fall_back_from_the_model_to_powercrud(rf):
    view = BookView(role=None, template_name_suffix="_list")
    view.request = rf.get("/")
    assert view.get_template_names() == ["crudapp/book_list.html", "powercrud/object_list.html"]
    assert view.get_partial_template_names("table") == [
        "crudapp/partials/book_table.html",
        "powercrud/partials/table.html",
    ]


def test_the_bulk_toolbar_and_row_checkboxes_appear_when_bulk_is_enabled(
    admin_client, settings, tmp_path, monkeypatch
):
    bulk = tmp_path / "powercrud" / "bulk"
    bulk.mkdir(parents=True)
    (bulk / "toolbar.html").write_text("<div id=stub-toolbar>{{ stub_count }}</div>")
    (bulk / "row_checkbox.html").write_text("<input type=checkbox value={{ object.pk }}>")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    monkeypatch.setattr(BookView, "bulk_fields", ["status"])
    monkeypatch.setattr(BookView, "get_bulk_context", lambda self: {"stub_count": 42})
    book = make_book()
    html = admin_client.get(reverse("book-list")).content.decode()
    assert "<div id=stub-toolbar>42</div>" in html
    assert f"<input type=checkbox value={book.pk}>" in html
    monkeypatch.setattr(BookView, "bulk_fields", [])
    html = admin_client.get(reverse("book-list")).content.decode()
    assert "stub-toolbar" not in html


def test_the_path_converter_follows_the_primary_key():
    class Probe(PowerCRUDView):
        fields = ["name"]

    assert BookView.path_converter == "int"
    assert type("G", (Probe,), {"model": Gadget}).path_converter == "uuid"
    assert type("T", (Probe,), {"model": Tag}).path_converter == "str"
    assert type("S", (Probe,), {"model": Tag, "path_converter": "slug"}).path_converter == "slug"


def test_pages_load_the_vendored_assets(admin_client):
    html = admin_client.get(reverse("book-list")).content.decode()
    assert re.search(r'src="/static/async_queue/htmx\.min\.js"', html)
    assert 'href="/static/powercrud/powercrud.css"' in html
    assert 'src="/static/powercrud/powercrud.js"' in html
    assert re.search(r'hx-headers=\'\{"X-CSRFToken": "\w{32,}"\}\'', html)


class AuthorsWithBooks(AuthorView):
    list_fields = ["name", "books"]


def test_reverse_relations_are_listed_and_prefetched(rf, django_assert_num_queries):
    make_books(12, authors=3)
    request = rf.get("/crud/author/")
    request.user = make_user("admin", "superuser")
    view = AuthorsWithBooks.as_view(role=Role.LIST)
    with django_assert_num_queries(3):  # the count, the page, the books
        response = view(request)
        response.render()
    rows = response.context_data["rows"]
    assert rows[0].cells == ["Author 0", "Book 000, Book 003, Book 006, Book 009"]
    assert [c.name for c in response.context_data["columns"] if c.sort_url] == ["name"]
