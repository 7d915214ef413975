"""Single edits against jobs: 409 with the conflict notice, the input kept, nothing written.

Queued jobs and jobs marked running run on both databases; a real job holding the
object's advisory lock from a worker process needs PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from async_queue import Job, Status, schedule
from async_queue.exceptions import Conflict
from powercrud.conflicts import describe, find_conflict
from tests.conftest import wait_for
from tests.crudapp import tasks
from tests.crudapp.factories import make_book, make_gadget, make_tag, make_user
from tests.crudapp.models import Book, Gadget, Tag
from tests.crudapp.views import BookView, GadgetView

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.crudapp.root_urls")]
HTMX = {"HTTP_HX_REQUEST": "true"}
FOREVER = ("--forever", "--sleep", "0.1")


@pytest.fixture
def admin(client):
    user = make_user("admin", "superuser")
    client.force_login(user)
    client.user = user
    return client


def declare(*objects, user=None, running: bool = False, progress=None) -> Job:
    """A job that declared ``objects``: queued, or marked running (no worker).

    Due in an hour, so that no worker (a stray one of another test) ever runs it.
    """
    job = schedule(
        tasks.work_slowly,
        kwargs={"steps": 1},
        locks=list(objects),
        user=user,
        run_after=timedelta(hours=1),
    )
    if running:
        current, total = progress or (None, None)
        Job.objects.filter(pk=job.pk).update(
            status=Status.RUNNING, progress_current=current, progress_total=total
        )
        job.refresh_from_db()
    return job


def book_data(book: Book, **changes: object) -> dict[str, object]:
    data = {"title": book.title, "author": book.author_id, "status": book.status, "price": "1"}
    data.update(changes)
    return data


# -- update --------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_opening_the_update_of_a_busy_object_answers_409_naming_the_job(admin, headers):
    book = make_book("Dune")
    owner = make_user("mallory")
    job = declare(book, user=owner)
    response = admin.get(reverse("book-update", args=[book.pk]), **headers)
    assert response.status_code == 409
    html = response.content.decode()
    assert ("<html" in html) is not bool(headers)
    assert "“Dune” is busy" in html
    assert f"Job #{job.pk}" in html
    assert "tests.crudapp.tasks.work_slowly" in html
    assert "started by <strong>mallory</strong>" in html
    assert "waiting in the queue" in html
    assert "A background job is queued to work on this object." in html  # not yet working
    assert f'href="/jobs/{job.pk}/"' in html  # staff may open the job's dashboard page
    assert 'value="Dune"' in html  # the form is there to keep typing into
    assert "It cannot be saved until the job has finished." in html
    assert f'hx-get="/crud/book/{book.pk}/edit/" hx-trigger="every 2s"' in html


def test_submitting_an_update_of_a_busy_object_keeps_the_input_and_writes_nothing(admin):
    book = make_book("Dune")
    declare(book)
    url = reverse("book-update", args=[book.pk])
    response = admin.post(url, book_data(book, title="Dune, second draft"), **HTMX)
    assert response.status_code == 409
    html = response.content.decode()
    assert 'value="Dune, second draft"' in html
    assert "Nothing was saved: your input is still in the form below" in html
    assert "Edit Dune" in html
    assert f'hx-post="{url}"' in html
    assert Book.objects.get().title == "Dune"


def test_a_running_job_shows_its_live_progress(admin):
    book = make_book("Dune")
    declare(book, running=True, progress=(3, 12))
    response = admin.get(reverse("book-update", args=[book.pk]), **HTMX)
    assert response.status_code == 409
    html = response.content.decode()
    assert "running" in html
    assert "A background job is working on this object." in html
    assert '<progress max="100" value="25">' in html
    assert "3/12" in html


def test_a_jobs_progress_is_said_once_in_its_own_words_with_separated_numbers(admin):
    book = make_book("Dune")
    job = declare(book, running=True, progress=(5836, 20000))
    url = reverse("book-update", args=[book.pk])
    html = admin.get(url, **HTMX).content.decode()
    assert "5,836/20,000" in html  # no message: the numbers, as every count is written
    Job.objects.filter(pk=job.pk).update(progress_message="Checking: 5,836 of 10,000 books (58%)")
    html = admin.get(url, **HTMX).content.decode()
    assert "Checking: 5,836 of 10,000 books (58%)" in html
    # The job's own words say how far it is; an overall 29% beside them would contradict
    # (the bar still shows the whole job).
    assert 'class="pc-percent"' not in html
    assert '<progress max="100" value="29">' in html
    assert "5,836/20,000" not in html


def test_the_notice_counts_several_jobs_in_the_plural(admin):
    book = make_book("Dune")
    declare(book)
    declare(book, running=True)
    html = admin.get(reverse("book-update", args=[book.pk]), **HTMX).content.decode()
    assert "Background jobs are working on this object." in html


def test_the_conflict_clears_once_the_job_has_finished(admin):
    book = make_book("Dune")
    job = declare(book)
    url = reverse("book-update", args=[book.pk])
    Job.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED)
    poll = admin.get(url, HTTP_HX_TARGET="pc-conflict", **HTMX)
    assert poll.status_code == 200
    assert "The job has finished: you can save now." in poll.content.decode()
    response = admin.post(url, book_data(book, title="Dune Messiah"), **HTMX)
    assert response.status_code == 204
    assert Book.objects.get().title == "Dune Messiah"


def test_other_objects_are_not_busy(admin):
    book = make_book("Dune")
    declare(make_book("Emma", book.author), "some-key")
    response = admin.post(reverse("book-update", args=[book.pk]), book_data(book), **HTMX)
    assert response.status_code == 204


# -- delete --------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_deleting_a_busy_object_answers_409_and_deletes_nothing(admin, headers):
    book = make_book("Dune")
    job = declare(book)
    url = reverse("book-delete", args=[book.pk])
    opened = admin.get(url, **headers)
    assert opened.status_code == 409
    assert f"Job #{job.pk}" in opened.content.decode()
    submitted = admin.post(url, **headers)
    assert submitted.status_code == 409
    html = submitted.content.decode()
    assert "Nothing was deleted" in html
    assert "It cannot be deleted until the job has finished." in opened.content.decode()
    assert ("<html" in html) is not bool(headers)
    assert Book.objects.exists()


# -- the race between the check and the write ------------------------------------------


@pytest.mark.parametrize("running", [False, True], ids=["queued", "running"])
def test_a_job_appearing_after_the_check_still_refuses_the_write(admin, monkeypatch, running):
    """``busy()`` said nothing, but ``locks.hold()`` around the write finds the job."""
    book = make_book("Dune")
    job = declare(book, running=running)
    monkeypatch.setattr(BookView, "find_conflict", lambda self, obj: None)
    url = reverse("book-update", args=[book.pk])
    response = admin.post(url, book_data(book, title="Overwritten"), **HTMX)
    assert response.status_code == 409
    html = response.content.decode()
    assert f"Job #{job.pk}" in html
    assert 'value="Overwritten"' in html
    assert Book.objects.get().title == "Dune"
    deletion = admin.post(reverse("book-delete", args=[book.pk]), **HTMX)
    assert deletion.status_code == 409
    assert Book.objects.exists()


# -- primary keys of every type ----------------------------------------------------------


def test_string_primary_keys_conflict_too(admin):
    tag = make_tag("sci-fi", "SF")
    job = declare(tag)
    url = reverse("tag-update", args=[tag.pk])
    response = admin.post(url, {"slug": "sci-fi", "name": "Changed"}, **HTMX)
    assert response.status_code == 409
    assert f"Job #{job.pk}" in response.content.decode()
    assert Tag.objects.get().name == "SF"
    assert admin.post(reverse("tag-delete", args=[tag.pk]), **HTMX).status_code == 409


def test_uuid_primary_keys_conflict_too(admin, monkeypatch):
    gadget = make_gadget("Gizmo")
    declare(gadget, running=True)
    url = reverse("gadget-update", args=[gadget.pk])
    assert admin.get(url, **HTMX).status_code == 409
    monkeypatch.setattr(GadgetView, "find_conflict", lambda self, obj: None)
    response = admin.post(url, {"name": "Changed", "color": "blue"}, **HTMX)
    assert response.status_code == 409
    assert Gadget.objects.get().name == "Gizmo"


# -- the notice ----------------------------------------------------------------------------


def test_the_notice_links_a_job_only_for_users_who_may_see_it(client):
    book = make_book("Dune")
    owner = make_user("owner", "crudapp.change_book")
    other = make_user("other", "crudapp.change_book")
    job = declare(book, user=owner)
    url = reverse("book-update", args=[book.pk])
    client.force_login(owner)
    assert f'href="/jobs/{job.pk}/"' in client.get(url, **HTMX).content.decode()
    client.force_login(other)
    html = client.get(url, **HTMX).content.decode()
    assert f"Job #{job.pk}" in html
    assert f'href="/jobs/{job.pk}/"' not in html


def test_describe_names_jobs_owners_and_progress_and_holders_that_are_not_jobs():
    book = make_book("Dune")
    job = declare(book, user=make_user("mallory"), running=True, progress=(1, 4))
    conflict = find_conflict([book])
    assert conflict is not None
    assert [j.pk for j in conflict.jobs] == [job.pk]
    notice = describe(conflict, make_user("viewer"), refresh_url="/x/")
    (blocking,) = notice.jobs
    assert (blocking.owner, blocking.percent, blocking.url) == ("mallory", 25.0, None)
    assert notice.message == "A background job is working on this object."
    other = describe(Conflict(["crudapp.book:1"], []), make_user("v2"), refresh_url="/x/")
    assert other.jobs == []
    assert other.message == (
        "Another request is saving this object right now; try again in a moment."
    )
    assert find_conflict([make_book("Emma", book.author)]) is None


# -- PostgreSQL: a real job holding the lock in a worker process ----------------------------


@pytest.mark.postgres
def test_a_job_running_in_a_worker_blocks_the_edit_until_it_ends(admin, start_worker):
    book = make_book("Dune")
    job = schedule(tasks.work_slowly, kwargs={"steps": 12, "delay": 0.25}, locks=[book])
    worker = start_worker(*FOREVER)
    wait_for(lambda: Job.objects.running().exists())
    url = reverse("book-update", args=[book.pk])
    opened = admin.get(url, **HTMX)
    assert opened.status_code == 409
    assert f"Job #{job.pk}" in opened.content.decode()
    submitted = admin.post(url, book_data(book, title="During the job"), **HTMX)
    assert submitted.status_code == 409
    assert 'value="During the job"' in submitted.content.decode()
    assert Book.objects.get().title == "Dune"
    wait_for(lambda: Job.objects.succeeded().exists())
    after = admin.post(url, book_data(book, title="After the job"), **HTMX)
    assert after.status_code == 204
    assert Book.objects.get().title == "After the job"
    worker.kill()


@pytest.mark.postgres
def test_a_worker_that_starts_the_job_between_check_and_write_makes_the_write_fail(
    admin, start_worker, monkeypatch
):
    """The advisory lock the worker holds makes ``hold()`` raise: 409, nothing written."""
    book = make_book("Dune")
    job = schedule(tasks.work_slowly, kwargs={"steps": 12, "delay": 0.25}, locks=[book])
    worker = start_worker(*FOREVER)
    wait_for(lambda: Job.objects.running().exists())
    monkeypatch.setattr(BookView, "find_conflict", lambda self, obj: None)
    response = admin.post(
        reverse("book-update", args=[book.pk]), book_data(book, title="X"), **HTMX
    )
    assert response.status_code == 409
    assert f"Job #{job.pk}" in response.content.decode()
    assert Book.objects.get().title == "Dune"
    deletion = admin.post(reverse("book-delete", args=[book.pk]), **HTMX)
    assert deletion.status_code == 409
    assert Book.objects.exists()
    worker.kill()
