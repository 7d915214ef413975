"""Bulk edit and bulk delete below the async threshold: in the request, all or nothing."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import m2m_changed, post_save
from django.urls import reverse

from async_queue import Job, schedule
from powercrud.bulk import BulkEditForm
from powercrud.jobs import BulkEdit, BulkError, BulkValidationError, bulk_edit
from tests.crudapp.bulk_views import BookView, GadgetView, TagView
from tests.crudapp.helpers import (
    HX,
    choose,
    edit,
    events,
    make_author,
    make_books,
    make_tags,
    selected,
)
from tests.crudapp.models import Author, Book, Gadget, Loan, Tag

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.crudapp.bulk_urls")]


@pytest.fixture
def admin(client, django_user_model):
    user = django_user_model.objects.create_superuser("admin", password="pw")
    client.force_login(user)
    return user


@pytest.fixture(params=["fast", "save"])
def write_path(request, monkeypatch):
    """Both ways a bulk edit writes: batched UPDATEs, and save() per object."""
    monkeypatch.setattr(BulkEdit, "fast_write", request.param == "fast")
    return request.param


# -- bulk edit ---------------------------------------------------------------------------


def test_the_edit_form_offers_each_bulk_field(client, admin):
    books = make_books(3)
    choose(client, books)
    response = client.post(reverse("book-bulk-edit"), **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Edit 3 selected books" in html
    for name in BookView.bulk_fields:
        assert f'name="{name}__change"' in html
    assert 'name="tags__mode"' in html
    assert '<option value="bestseller">Bestseller</option>' in html
    assert 'hx-target="#pc-modal-content"' in html


def test_every_count_the_bulk_pages_show_has_thousands_separators(client, admin):
    """As the messages built in Python write them ("Updated 1,234 books.")."""
    books = make_books(1234)
    client.post(reverse("book-select"), {"action": "all"}, **HX)
    html = client.get(reverse("book-list")).content.decode()
    assert "<strong>1,234</strong> selected" in html
    assert "1,234 books · page 1 of 124" in html
    html = client.post(reverse("book-bulk-edit"), **HX).content.decode()
    assert "Edit 1,234 selected books" in html
    assert "Apply to 1,234 books" in html
    html = client.post(reverse("book-bulk-delete"), **HX).content.decode()
    assert "Delete 1,234 selected books?" in html
    assert "This deletes 1,234 books" in html
    assert ">Delete 1,234</button>" in html
    schedule("tests.crudapp.tasks.hold_for", [1], locks=books, on_commit=False)
    html = client.post(reverse("book-bulk-edit"), **HX).content.decode()
    assert "1,234 of the 1,234 selected books are declared by a queued or running job" in html
    assert "… and 1,184 more." in html
    assert "1234" not in html.replace('data-busy="1234"', "")


def test_editing_with_nothing_selected_says_so(client, admin):
    response = client.post(reverse("book-bulk-edit"), **HX)
    assert response.status_code == 422
    assert "Nothing is selected" in response.content.decode()


def test_plain_fields_choices_booleans_and_foreign_keys_in_one_transaction(
    client, admin, write_path
):
    books = make_books(4)
    author = make_author()
    choose(client, books[:3])
    before = {b.pk: b.updated_at for b in Book.objects.all()}
    response = edit(client, status="published", in_print="False", price="12.50", author=author.pk)
    assert response.status_code == 204
    assert events(response) == {
        "powercrud:changed": {"message": "Updated 3 books."},
        "powercrud:close-modal": {},
    }
    for book in Book.objects.filter(pk__in=[b.pk for b in books[:3]]):
        assert (book.status, book.in_print, book.price, book.author) == (
            "published",
            False,
            Decimal("12.50"),
            author,
        )
        assert book.updated_at > before[book.pk]  # auto_now fields are saved too
    untouched = Book.objects.get(pk=books[3].pk)
    assert (untouched.status, untouched.in_print, untouched.author) == ("draft", True, None)
    assert selected(client) == []  # cleared after the success


def test_a_foreign_key_can_be_cleared_and_unticked_fields_keep_their_values(client, admin):
    author = make_author()
    books = make_books(2, author=author, status=Book.Status.ARCHIVED)
    choose(client, books)
    assert edit(client, author=None).status_code == 204
    assert set(Book.objects.values_list("author", "status")) == {(None, "archived")}


def test_many_to_many_add_replace_and_remove(client, admin, write_path):
    red, green, blue = make_tags("red one", "green/two", "blue&three")
    books = make_books(3)
    books[0].tags.set([red])
    choose(client, books)

    assert edit(client, tags=("add", [green.pk, blue.pk])).status_code == 204
    assert {b.pk: set(b.tags.all()) for b in Book.objects.all()} == {
        books[0].pk: {red, green, blue},
        books[1].pk: {green, blue},
        books[2].pk: {green, blue},
    }
    choose(client, books)
    assert edit(client, tags=("remove", [green.pk, red.pk])).status_code == 204
    assert all(set(b.tags.all()) == {blue} for b in Book.objects.all())
    choose(client, books[:2])
    assert edit(client, tags=("replace", [red.pk])).status_code == 204
    assert [set(b.tags.all()) for b in Book.objects.order_by("id")] == [{red}, {red}, {blue}]
    choose(client, books[:1])
    assert edit(client, tags=("replace", [])).status_code == 204  # blank=True: may be emptied
    assert not Book.objects.get(pk=books[0].pk).tags.exists()


def test_a_validation_failure_changes_nothing_and_lists_each_object(client, admin):
    books = make_books(4)
    Book.objects.filter(pk__in=[books[1].pk, books[3].pk]).update(in_print=False)
    tag = make_tags("keep")[0]
    choose(client, books)
    response = edit(client, status="bestseller", price="3.00", tags=("add", [tag.pk]))
    assert response.status_code == 422
    html = response.content.decode()
    assert "2 of 4 books failed validation; nothing was changed." in html
    for book in (books[1], books[3]):
        assert (
            f"<li><strong>{book.title}</strong>: <em>status</em>: "
            "A book out of print cannot be a bestseller.</li>"
        ) in html
    assert books[0].title not in html.split("pc-bulk-errors")[1].split("</div>")[0]
    assert set(Book.objects.values_list("status", "price")) == {("draft", Decimal("10.00"))}
    assert not Book.tags.through.objects.exists()
    assert len(selected(client)) == 4  # kept, to fix and try again


def test_form_errors_are_shown_in_place(client, admin):
    books = make_books(2)
    choose(client, books)
    response = client.post(reverse("book-bulk-edit"), {"stage": "apply"}, **HX)
    assert response.status_code == 422
    assert "Tick at least one field to change." in response.content.decode()
    response = edit(client, status="nonsense")
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    response = edit(client, price="-1")  # a model validator: checked on every object
    assert response.status_code == 422
    html = response.content.decode()
    assert "2 of 2 books failed validation" in html
    assert "<em>price</em>: Ensure this value is greater than or equal to 0." in html
    response = edit(client, tags=("add", []))
    assert "Choose at least one." in response.content.decode()
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}


def test_uuid_and_string_primary_keys(client, admin):
    maker = make_author("Maker")
    gadgets = [Gadget.objects.create(name=f"g{n}") for n in range(3)]
    tag = make_tags("x/y z")[0]
    choose(client, gadgets[:2], "gadget")
    response = edit(
        client, "gadget", kind="toy", active="False", maker=maker.pk, tags=("add", [tag.pk])
    )
    assert response.status_code == 204
    changed = Gadget.objects.filter(kind="toy", active=False, maker=maker)
    assert {g.pk for g in changed} == {g.pk for g in gadgets[:2]}
    assert all(list(g.tags.all()) == [tag] for g in changed)
    assert selected(client, GadgetView) == []

    tags = make_tags("a b", "c/d", "<e>")
    choose(client, tags[:2], "tag")
    assert edit(client, "tag", color="blue", archived="True", owner=maker.pk).status_code == 204
    assert set(Tag.objects.filter(color="blue", archived=True).values_list("pk", flat=True)) == {
        "a b",
        "c/d",
    }
    assert selected(client, TagView) == []


def test_rows_deleted_since_they_were_selected_are_dropped(client, admin):
    books = make_books(3)
    choose(client, books)
    Book.objects.filter(pk=books[0].pk).delete()
    response = client.post(reverse("book-bulk-edit"), **HX)
    assert "Edit 2 selected books" in response.content.decode()
    assert selected(client) == [str(books[1].pk), str(books[2].pk)]


# -- bulk delete -------------------------------------------------------------------------


def test_bulk_delete_asks_then_deletes_the_selected_rows(client, admin):
    books = make_books(4)
    choose(client, books[:3])
    response = client.post(reverse("book-bulk-delete"), **HX)
    assert response.status_code == 200
    assert "Delete 3 selected books?" in response.content.decode()
    assert Book.objects.count() == 4
    response = client.post(reverse("book-bulk-delete"), {"stage": "apply"}, **HX)
    assert response.status_code == 204
    assert events(response)["powercrud:changed"] == {"message": "Deleted 3 books."}
    assert list(Book.objects.all()) == [books[3]]
    assert selected(client) == []


def test_a_protected_row_makes_bulk_delete_delete_nothing(client, admin):
    books = make_books(3)
    Loan.objects.create(book=books[2], borrower="Bob")
    choose(client, books)
    response = client.post(reverse("book-bulk-delete"), {"stage": "apply"}, **HX)
    assert response.status_code == 422
    html = response.content.decode()
    assert "Nothing was deleted" in html
    assert "loan to Bob" in html
    assert Book.objects.count() == 3


# -- conflicts and the race between the check and the write --------------------------------


def test_a_queued_job_on_a_selected_row_makes_bulk_operations_refuse(client, admin):
    books = make_books(3)
    job = schedule(
        "tests.crudapp.tasks.hold_for", [1], locks=[books[1]], user=admin, on_commit=False
    )
    choose(client, books)
    for url in (reverse("book-bulk-edit"), reverse("book-bulk-delete")):
        response = client.post(url, **HX)
        assert response.status_code == 409
        html = response.content.decode()
        assert "1 of the 3 selected books is declared by a queued or running job" in html
        assert f'data-pk="{books[1].pk}" data-job="{job.pk}"' in html
        assert "tests.crudapp.tasks.hold_for" in html
        assert "waiting in the queue" in html
    response = edit(client, status="published")
    assert response.status_code == 409
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}
    assert len(selected(client)) == 3


def test_a_running_jobs_progress_is_said_in_its_own_words_or_as_a_percent(client, admin):
    books = make_books(2)
    job = schedule("tests.crudapp.tasks.hold_for", [1], locks=books, on_commit=False)
    progress = {"progress_current": 3, "progress_total": 12}
    Job.objects.filter(pk=job.pk).update(status="running", **progress)
    choose(client, books)
    html = client.post(reverse("book-bulk-edit"), **HX).content.decode()
    assert "<td>25%</td>" in html
    Job.objects.filter(pk=job.pk).update(progress_message="Checking: 3 of 6 books (50%)")
    html = client.post(reverse("book-bulk-edit"), **HX).content.decode()
    assert "<td>Checking: 3 of 6 books (50%)</td>" in html  # not "25% Checking: ..."


def test_a_job_appearing_between_the_check_and_the_write_is_refused_by_hold(
    client, admin, monkeypatch
):
    """The check passes; a job declares a row before the write: hold() refuses, 409."""
    books = make_books(2)
    choose(client, books)
    jobs = []
    check = BookView.get_bulk_conflicts

    def check_then_a_job_arrives(self, pks):
        if jobs:  # describing the conflict afterwards: the real check
            return check(self, pks)
        jobs.append(
            schedule("tests.crudapp.tasks.hold_for", [1], locks=[books[0]], on_commit=False)
        )
        return []

    monkeypatch.setattr(BookView, "get_bulk_conflicts", check_then_a_job_arrives)
    response = edit(client, status="published")
    assert response.status_code == 409
    assert f'data-job="{jobs[0].pk}"' in response.content.decode()
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}


# -- without JavaScript and without permission -------------------------------------------


def test_without_javascript_forms_are_pages_and_success_redirects_back(client, admin):
    books = make_books(2)
    choose(client, books)
    page = client.post(reverse("book-bulk-edit"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "<!doctype html>" in html
    assert "Edit 2 selected books" in html
    assert "hx-post" not in html.split("pc-bulk-panel")[1]
    next_url = reverse("book-list") + "?status=draft"
    response = edit(client, headers={}, status="archived")
    assert response.status_code == 302
    assert response["Location"] == reverse("book-list")
    assert set(Book.objects.values_list("status", flat=True)) == {"archived"}
    choose(client, books)
    response = client.post(
        reverse("book-bulk-delete"), {"stage": "apply", "next": next_url}, follow=True
    )
    assert response.redirect_chain == [(next_url, 302)]
    assert "Deleted 2 books." in [str(m) for m in get_messages(response.wsgi_request)]
    assert not Book.objects.exists()


def test_bulk_edit_and_delete_need_their_permissions(client, django_user_model):
    user = django_user_model.objects.create_user("clerk", password="pw")
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_book", "change_book"], content_type__app_label="crudapp"
        )
    )
    client.force_login(user)
    books = make_books(2)
    choose(client, books)
    assert client.post(reverse("book-bulk-delete"), {"stage": "apply"}, **HX).status_code == 403
    assert Book.objects.count() == 2
    assert edit(client, status="published").status_code == 204
    anonymous = client.__class__()
    assert anonymous.post(reverse("book-bulk-edit")).status_code == 302  # to the login page


# -- the job functions and the form ---------------------------------------------------------


def test_the_job_function_refuses_what_it_cannot_set():
    (book,) = make_books(1)
    with pytest.raises(BulkError, match="has no field 'nope'"):
        bulk_edit("crudapp.book", [str(book.pk)], {"nope": 1})
    with pytest.raises(BulkError, match="cannot be bulk edited"):
        bulk_edit("crudapp.book", [str(book.pk)], {"id": 3})
    with pytest.raises(BulkError, match="not an installed model"):
        bulk_edit("crudapp.nothing", [str(book.pk)], {"status": "draft"})
    with pytest.raises(BulkError, match="mode must be one of"):
        bulk_edit("crudapp.book", [str(book.pk)], m2m={"tags": {"mode": "merge", "pks": []}})
    with pytest.raises(BulkError, match="Choose at least one field"):
        bulk_edit("crudapp.book", [str(book.pk)])


def test_the_job_function_validates_every_object_before_writing():
    books = make_books(3)
    Book.objects.filter(pk=books[2].pk).update(in_print=False)
    with pytest.raises(BulkValidationError) as info:
        bulk_edit("crudapp.book", [str(b.pk) for b in books], {"status": "bestseller"})
    assert [str(e) for e in info.value.errors] == [
        "book 0002: status: A book out of print cannot be a bestseller."
    ]
    assert str(info.value).splitlines()[0] == (
        "1 of 3 books failed validation; nothing was changed."
    )
    with pytest.raises(
        BulkValidationError, match=r"all books: author: .*id 999999 is not a valid choice"
    ):
        bulk_edit("crudapp.book", [str(b.pk) for b in books], {"author": 999999})
    with pytest.raises(BulkValidationError, match="1 of the chosen objects do not exist"):
        bulk_edit("crudapp.book", [str(books[0].pk)], m2m={"tags": {"mode": "add", "pks": ["z"]}})
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}


def test_the_job_function_returns_a_summary_and_skips_rows_that_are_gone():
    books = make_books(3)
    result = bulk_edit(
        "crudapp.book", [str(books[0].pk), str(books[1].pk), "999999"], {"status": "published"}
    )
    assert result == {
        "action": "edit",
        "model": "crudapp.book",
        "updated": 2,
        "missing": 1,
        "fields": ["status"],
    }


def test_the_form_refuses_fields_bulk_edit_cannot_set():
    with pytest.raises(ImproperlyConfigured, match="is not an editable field"):
        BulkEditForm(model=Book, fields=["id"])
    with pytest.raises(ImproperlyConfigured, match="is not an editable field"):
        BulkEditForm(model=Book, fields=["updated_at"])
    form = BulkEditForm(
        {"author__change": "on", "author": str(Author.objects.create(name="A").pk)},
        model=Book,
        fields=["author", "status"],
    )
    assert form.is_valid(), form.errors
    assert form.job_kwargs() == {"changes": {"author": form.cleaned_data["author"].pk}, "m2m": {}}


def test_a_large_selection_is_not_run_in_the_request(client, admin):
    """At the threshold the request only schedules (the async tests run the job)."""
    books = make_books(BookView.bulk_async_threshold)
    client.post(reverse("book-select"), {"action": "all"}, **HX)
    response = edit(client, status="published")
    assert response.status_code == 202
    assert Job.objects.get().meta["powercrud"]["count"] == len(books)
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}


def test_writes_go_through_save_when_a_receiver_would_notice():
    books = make_books(3)
    (tag,) = make_tags("t")
    saved, changed = [], []

    def on_save(sender, instance, update_fields, **kwargs):
        saved.append((instance.pk, sorted(update_fields)))

    def on_m2m(sender, instance, action, **kwargs):
        changed.append((instance.pk, action))

    pks = [str(b.pk) for b in books]
    edit_args = ("crudapp.book", pks, {"status": "published"})
    m2m = {"tags": {"mode": "add", "pks": [tag.pk]}}
    assert BulkEdit(*edit_args, m2m).can_write_fast()
    bulk_edit(*edit_args, m2m)
    assert (saved, changed) == ([], [])  # nobody listens: batched, and nobody notices

    post_save.connect(on_save, sender=Book)
    m2m_changed.connect(on_m2m, sender=Book.tags.through)
    try:
        assert not BulkEdit(*edit_args, m2m).can_write_fast()
        bulk_edit("crudapp.book", pks, {"status": "archived"}, m2m)
    finally:
        post_save.disconnect(on_save, sender=Book)
        m2m_changed.disconnect(on_m2m, sender=Book.tags.through)
    assert saved == [(b.pk, ["status", "updated_at"]) for b in books]
    assert [action for _, action in changed] == ["pre_add", "post_add"] * 3
    assert set(Book.objects.values_list("status", flat=True)) == {"archived"}


def test_an_overridden_save_object_hook_turns_the_fast_path_off():
    class Custom(BulkEdit):
        def save_object(self, obj, update_fields):
            super().save_object(obj, update_fields)

    (book,) = make_books(1)
    assert not Custom("crudapp.book", [str(book.pk)], {"status": "published"}).can_write_fast()


def test_jobs_on_other_lock_targets_are_listed_too(rf, admin, client):
    """A view that also locks each row's author refuses while a job holds that author."""
    author = make_author()
    books = make_books(2, author=author)
    job = schedule("tests.crudapp.tasks.hold_for", [1], locks=[author], on_commit=False)

    class AuthorLockedBookView(BookView):
        def get_bulk_lock_targets(self, pks):
            return [*super().get_bulk_lock_targets(pks), author]

    request = rf.get("/")
    request.user = admin
    request.session = client.session
    view = AuthorLockedBookView()
    view.setup(request)
    conflicts = view.get_bulk_conflicts([str(b.pk) for b in books])
    assert [(c.label, [blocking.job for blocking in c.jobs]) for c in conflicts] == [
        ("Objects these rows depend on", [job])
    ]
