"""Bulk operations at or above the threshold: one job, every object locked, polled progress."""

import time

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from async_queue import Job, Status, schedule
from async_queue.locks import lock_key
from tests.conftest import wait_for
from tests.crudapp.bulk_views import BookView, QuickBookView
from tests.crudapp.helpers import (
    HX,
    attribute,
    choose,
    delete,
    edit,
    events,
    make_books,
    make_tags,
    selected,
)
from tests.crudapp.models import Book

# Transactional: jobs run in real transactions, workers and progress use other connections.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.crudapp.bulk_urls")]
FOREVER = ("--forever", "--sleep", "0.1")


@pytest.fixture
def admin(client, django_user_model):
    user = django_user_model.objects.create_superuser("admin", password="pw")
    client.force_login(user)
    return user


def status_url(job):
    return reverse("quickbook-bulk-status", kwargs={"job_pk": job.pk})


def poll(client, job):
    return client.get(status_url(job), **HX)


# -- scheduling and polling -------------------------------------------------------------------


def test_the_edit_is_one_job_declaring_every_object_and_the_modal_polls_it(client, admin):
    books = make_books(6)
    (tag,) = make_tags("new tag")
    choose(client, books, "quickbook")
    response = edit(client, "quickbook", status="published", tags=("add", [tag.pk]))
    assert response.status_code == 202
    job = Job.objects.get()
    assert job.name == "powercrud.jobs.bulk_edit"
    assert (job.user, job.max_attempts, job.status) == (admin, 1, Status.QUEUED)
    assert sorted(job.locks.values_list("key", flat=True)) == sorted(lock_key(b) for b in books)
    assert job.kwargs == {
        "model": "crudapp.book",
        "pks": [str(b.pk) for b in books],
        "changes": {"status": "published"},
        "m2m": {"tags": {"mode": "add", "pks": ["new tag"]}},
    }
    assert job.meta == {
        "powercrud": {
            "view": "tests.crudapp.bulk_views.QuickBookView",
            "action": "edit",
            "model": "crudapp.book",
            "count": 6,
        }
    }
    html = response.content.decode()
    assert attribute(html, "hx-get") == status_url(job)
    assert attribute(html, "hx-trigger") == "every 1s"
    assert attribute(html, "data-state") == "queued"
    assert "Waiting for a worker" in html
    assert '<h2 id="pc-modal-title">Updating 6 books</h2>' in html
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}  # not yet

    response = poll(client, job)
    assert response.status_code == 200  # still polling
    assert "HX-Trigger" not in response

    job.execute()
    assert job.status == Status.SUCCEEDED
    assert job.result["updated"] == 6
    response = poll(client, job)
    assert response.status_code == 286  # stop polling
    html = response.content.decode()
    assert attribute(html, "data-state") == "succeeded"
    assert attribute(html, "data-percent") == "100"
    assert 'value="100.0"' in html
    assert "hx-trigger" not in html
    assert "Updated 6 books." in html
    # The modal's title, outside the polled element, is replaced too: no "Updating" left.
    assert '<h2 id="pc-modal-title" hx-swap-oob="true">Updated 6 books</h2>' in html
    assert "Updating" not in html
    assert events(response) == {"powercrud:changed": {"message": "Updated 6 books."}}
    assert set(Book.objects.values_list("status", flat=True)) == {"published"}
    assert all(list(b.tags.all()) == [tag] for b in Book.objects.all())
    assert selected(client, QuickBookView) == []  # cleared once the job succeeded


def test_a_failing_job_shows_its_error_and_changes_nothing(client, admin):
    books = make_books(6)
    Book.objects.filter(pk__in=[books[0].pk, books[4].pk]).update(in_print=False)
    choose(client, books, "quickbook")
    assert edit(client, "quickbook", status="bestseller", price="1.00").status_code == 202
    job = Job.objects.get()
    job.execute()
    assert job.status == Status.FAILED  # one attempt: it would fail the same way again
    response = poll(client, job)
    assert response.status_code == 286
    assert "HX-Trigger" not in response  # no false success
    html = response.content.decode()
    assert attribute(html, "data-state") == "failed"
    assert "Failed." in html
    assert '<h2 id="pc-modal-title" hx-swap-oob="true">Could not update 6 books</h2>' in html
    assert "2 of 6 books failed validation; nothing was changed." in html
    for book in (books[0], books[4]):
        assert f"<li>{book.title}: status: A book out of print cannot be a bestseller.</li>" in html
    assert set(Book.objects.values_list("status", "price")) == {("draft", 10)}
    assert len(selected(client, QuickBookView)) == 6  # kept, to try again


def test_bulk_delete_and_many_to_many_replace_run_as_jobs(client, admin):
    books = make_books(8)
    red, blue = make_tags("red", "blue")
    for book in books:
        book.tags.add(red)
    choose(client, books[:6], "quickbook")
    assert edit(client, "quickbook", tags=("replace", [blue.pk])).status_code == 202
    Job.objects.get().execute()
    assert [set(b.tags.all()) for b in Book.objects.order_by("id")] == [{blue}] * 6 + [{red}] * 2
    poll(client, Job.objects.get())  # clears the selection

    choose(client, books[2:], "quickbook")
    response = delete(client, "quickbook")
    assert response.status_code == 202
    job = Job.objects.order_by("-id").first()
    assert job.name == "powercrud.jobs.bulk_delete"
    assert job.meta["powercrud"]["action"] == "delete"
    assert Book.objects.count() == 8
    job.execute()
    assert job.result["deleted"] == 6
    assert list(Book.objects.order_by("id")) == books[:2]
    response = poll(client, job)
    assert events(response) == {"powercrud:changed": {"message": "Deleted 6 books."}}
    assert '<h2 id="pc-modal-title" hx-swap-oob="true">Deleted 6 books</h2>' in (
        response.content.decode()
    )


def test_the_modal_says_a_phase_in_one_phrase_and_titles_the_outcome_without_javascript(
    client, admin
):
    books = make_books(6)
    choose(client, books, "quickbook")
    edit(client, "quickbook", status="published")
    job = Job.objects.get()
    message = "Checking: 3 of 6 books (50%)"
    Job.objects.filter(pk=job.pk).update(
        status=Status.RUNNING, progress_current=3, progress_total=12, progress_message=message
    )
    html = poll(client, job).content.decode()
    assert attribute(html, "data-percent") == "25"  # the bar: the whole job
    state = html[html.index('<p class="pc-bulk-state">') :]
    state = state[: state.index("</p>")]
    # The phase's own words, not "25% Checking: 3 of 6 books (50%)".
    assert "25%" not in state
    assert message in state
    assert 'hx-swap-oob="true"' not in html  # the title changes only once it has ended

    Job.objects.filter(pk=job.pk).update(status=Status.QUEUED)
    job.refresh_from_db()
    job.execute()
    page = client.get(status_url(job)).content.decode()  # without JavaScript: a page
    assert '<h2 id="pc-modal-title">Updated 6 books</h2>' in page


def test_a_real_worker_runs_500_rows_and_the_modal_follows_its_progress(
    client, admin, start_worker
):
    make_books(500)
    client.post(reverse("quickbook-select"), {"action": "all"}, **HX)
    assert len(selected(client, QuickBookView)) == 500
    assert edit(client, "quickbook", status="archived", in_print="False").status_code == 202
    job = Job.objects.get()
    worker = start_worker(*FOREVER)
    states, percents = [], []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = poll(client, job)
        html = response.content.decode()
        states.append(attribute(html, "data-state"))
        if "data-percent" in html:
            percents.append(float(attribute(html, "data-percent")))
        if response.status_code == 286:
            break
        time.sleep(0.05)
    worker.send_signal(15)
    assert worker.wait() == 0, worker.stderr
    assert states[-1] == "succeeded", (states, worker.stderr)
    assert percents == sorted(percents)
    assert percents[-1] == 100
    assert Book.objects.filter(status="archived", in_print=False).count() == 500
    job.refresh_from_db()
    assert (job.progress_current, job.progress_total) == (1000, 1000)  # checked + saved
    assert job.progress_message == "Updated 500 books"


# -- who may see a job's progress ---------------------------------------------------------------


def test_the_status_of_a_job_is_only_for_its_owner_and_its_own_view(
    client, admin, django_user_model
):
    books = make_books(6)
    choose(client, books, "quickbook")
    edit(client, "quickbook", status="published")
    job = Job.objects.get()
    other = django_user_model.objects.create_user("other", password="pw")
    other.user_permissions.set(
        Permission.objects.filter(content_type__app_label="crudapp", codename__endswith="_book")
    )
    foreign = schedule("tests.crudapp.tasks.hold_for", [1], user=admin)
    assert (
        client.get(reverse("quickbook-bulk-status", kwargs={"job_pk": foreign.pk})).status_code
        == 404
    )
    assert client.get(reverse("book-bulk-status", kwargs={"job_pk": job.pk})).status_code == 404
    assert (
        client.get(reverse("quickbook-bulk-status", kwargs={"job_pk": 999999})).status_code == 404
    )

    page = client.get(status_url(job))  # without JavaScript: a page that refreshes itself
    assert page.status_code == 200
    assert '<meta http-equiv="refresh" content="2">' in page.content.decode()
    client.force_login(other)
    assert client.get(status_url(job), **HX).status_code == 404  # someone else's job


def test_without_javascript_applying_redirects_to_the_jobs_page(client, admin):
    books = make_books(5)
    choose(client, books, "quickbook")
    response = edit(client, "quickbook", headers={}, status="published")
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == status_url(job)


# -- conflicts ------------------------------------------------------------------------------


def test_a_queued_job_on_any_selected_row_refuses_the_job_too(client, admin):
    books = make_books(6)
    blocker = schedule("tests.crudapp.tasks.hold_for", [1], locks=[books[5]])
    choose(client, books, "quickbook")
    response = edit(client, "quickbook", status="published")
    assert response.status_code == 409
    assert f'data-pk="{books[5].pk}" data-job="{blocker.pk}"' in response.content.decode()
    assert list(Job.objects.all()) == [blocker]  # nothing scheduled


def test_a_job_running_in_another_process_refuses_both_paths_and_the_race(
    client, admin, start_worker, monkeypatch
):
    """A real worker runs a job that declared one book; edits in the request and as a job
    are refused, also when the job starts after the check (hold() refuses then)."""
    books = make_books(6)
    choose(client, books[:3], "book")  # sessions first: SQLite writes wait for the job
    choose(client, books, "quickbook")
    blocker = schedule("tests.crudapp.tasks.hold_for", [30], locks=[books[1]], user=admin)
    worker = start_worker(*FOREVER)
    wait_for(lambda: Job.objects.filter(pk=blocker.pk, status=Status.RUNNING).exists())

    response = edit(client, "book", status="published")  # in the request
    assert response.status_code == 409
    html = response.content.decode()
    assert f'data-pk="{books[1].pk}" data-job="{blocker.pk}"' in html
    assert "running" in html
    assert edit(client, "quickbook", status="published").status_code == 409  # as a job

    check = BookView.get_bulk_conflicts
    calls = []

    def missed_it(self, pks):  # the check ran just before the job started
        calls.append(pks)
        return [] if len(calls) == 1 else check(self, pks)

    monkeypatch.setattr(BookView, "get_bulk_conflicts", missed_it)
    response = edit(client, "book", status="published")
    assert response.status_code == 409
    assert f'data-job="{blocker.pk}"' in response.content.decode()
    monkeypatch.undo()

    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}
    assert list(Job.objects.all()) == [blocker]
    worker.kill()


@pytest.mark.postgres
def test_on_postgresql_the_advisory_lock_of_a_running_job_refuses_the_write(
    client, admin, start_worker, monkeypatch
):
    """With every job-row check bypassed, the lock the worker's transaction holds still wins."""
    from async_queue import locks

    books = make_books(3)
    choose(client, books, "book")
    blocker = schedule("tests.crudapp.tasks.hold_for", [30], locks=[books[2]])
    worker = start_worker(*FOREVER)
    wait_for(lambda: Job.objects.filter(pk=blocker.pk, status=Status.RUNNING).exists())
    monkeypatch.setattr(BookView, "get_bulk_conflicts", lambda self, pks: [])
    monkeypatch.setattr(locks, "_refuse_if_running", lambda keys, alias: None)
    response = edit(client, "book", status="published")
    assert response.status_code == 409
    html = response.content.decode()
    assert "Another request or job is changing these books right now" in html
    assert f'data-job="{blocker.pk}"' in html
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}
    worker.kill()
