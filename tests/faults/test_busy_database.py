"""Row 29: web writes while a job holds SQLite's write lock answer 503 "busy", never 500 or 400.

A real worker runs a job whose transaction holds the database's only write lock
(on SQLite a job begins with ``BEGIN IMMEDIATE``) far longer than this web
process's busy timeout (0.5 s here instead of the settings' 20 s). Meanwhile the
test process, as the web, creates a record, cancels a job, logs in, clicks a
selection checkbox and edits two objects, through Django's test client with the
project's middleware. Each must answer at once with 503 "the database is busy"
(htmx: an ``async-queue:busy`` event, plain requests: a page, both with
``Retry-After``), or succeed; never 500 or 400. The selection the session held
survives, and the edit of an object the job declared answers the truthful 409
("a background job is working on this object"). Once the job has ended the same
requests succeed. On PostgreSQL nothing holds the whole database, so every write
but the edit of the declared object commits during the job.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.urls import include, path, reverse

from async_queue import Job, Status, schedule
from async_queue.middleware import BUSY_EVENT, BUSY_MESSAGE
from powercrud.selection import Selection
from tests.conftest import login, make_user
from tests.crudapp.bulk_views import QuickBookView
from tests.crudapp.factories import make_book
from tests.crudapp.models import Book
from tests.crudapp.models import Book as BulkBook
from tests.faults.conftest import hold_in_a_job, on_postgres, report
from tests.urls import urlpatterns as base

urlpatterns = [
    *base,
    path("crud/", include("tests.crudapp.urls")),
    path("bulk/", include(QuickBookView.get_urls())),
]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]

HTMX = {"HTTP_HX_REQUEST": "true"}
WEB_BUSY_TIMEOUT_MS = 500
ANSWER_WITHIN = 5.0  # seconds: the busy timeout, and slack for a loaded machine
PASSWORD = "busy-database-test"


def busy(response: HttpResponse) -> bool:
    """A 503 "busy, try again" answer, with its message and Retry-After."""
    if response.status_code != 503 or not response.has_header("Retry-After"):
        return False
    if response.has_header("HX-Trigger"):
        return json.loads(response["HX-Trigger"])[BUSY_EVENT]["message"] == BUSY_MESSAGE
    return BUSY_MESSAGE in response.content.decode()


@pytest.fixture
def short_busy_timeout():
    """This (web) process waits 0.5 s for SQLite's write lock, not the settings' 20 s."""
    if on_postgres():
        yield
        return
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        (previous,) = cursor.fetchone()
        cursor.execute(f"PRAGMA busy_timeout = {WEB_BUSY_TIMEOUT_MS}")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout = {int(previous)}")


def test_web_writes_behind_a_long_job_answer_busy_and_lose_nothing(
    start_worker, tmp_path: Path, short_busy_timeout
):
    client = login(Client(), make_user("root", superuser=True, password=PASSWORD))
    x = make_book("Dune")
    y = make_book("Emma", x.author)
    first, second = BulkBook.objects.create(title="A"), BulkBook.objects.create(title="B")
    selection_key = Selection.key_for(QuickBookView, BulkBook)
    select_url = reverse("quickbook-select")
    assert client.post(select_url, {"action": "toggle", "toggle": first.pk}, **HTMX).status_code
    assert client.session[selection_key] == [str(first.pk)]
    waiting = schedule(
        "tests.faultapp.jobs_web.hold", kwargs={"seconds": 0}, run_after=timedelta(hours=1)
    )
    held = hold_in_a_job(x, tmp_path, start_worker)
    job = held.job

    def create(headers: dict[str, str]) -> HttpResponse:
        data = {"title": "New", "author": x.author_id, "status": "draft", "price": "1.00"}
        return client.post(reverse("book-create"), data, **headers)

    def edit(book: Book) -> HttpResponse:
        data = {"title": f"{book.title}, edited", "author": book.author_id, "status": "draft"}
        return client.post(reverse("book-update", args=[book.pk]), {**data, "price": "2"}, **HTMX)

    def log_in() -> HttpResponse:
        form = {"username": "root", "password": PASSWORD}
        return Client().post("/admin/login/?next=/admin/", form)

    actions = {
        "create (htmx)": lambda: create(HTMX),
        "create (page)": lambda: create({}),
        "cancel a job": lambda: client.post(
            reverse("async_queue:job-cancel", args=[waiting.pk]), **HTMX
        ),
        "log in": log_in,
        "selection click": lambda: client.post(
            select_url, {"action": "toggle", "toggle": second.pk}, **HTMX
        ),
        "edit another object": lambda: edit(y),
    }
    during: dict[str, tuple[int, float]] = {}
    for label, action in actions.items():
        started = time.monotonic()
        response = action()
        seconds = round(time.monotonic() - started, 3)
        during[label] = (response.status_code, seconds)
        assert response.status_code not in (400, 500), (label, response.status_code)
        if on_postgres():
            assert response.status_code < 400, (label, response.status_code)
        else:
            assert busy(response), (label, response.status_code, response.content[:300])
            assert seconds < ANSWER_WITHIN, (label, seconds)
    declared = edit(x)  # the object the job declared: a conflict, said truthfully
    assert declared.status_code == 409
    assert "A background job is working on this object." in declared.content.decode()
    assert f"Job #{job.pk}" in declared.content.decode()
    assert Job.objects.get(pk=job.pk).status == Status.RUNNING  # all of it met the live job

    if on_postgres():
        expected_selection = [str(first.pk), str(second.pk)]
    else:  # nothing was written: the session keeps its selection, the rest is unchanged
        expected_selection = [str(first.pk)]
        assert not Book.objects.filter(title="New").exists()
        assert Book.objects.get(pk=y.pk).title == "Emma"
        assert Job.objects.get(pk=waiting.pk).status == Status.QUEUED
    assert client.session[selection_key] == expected_selection

    held.end()
    after: dict[str, int] = {}
    if not on_postgres():  # what was refused goes through now
        for label, action in actions.items():
            response = action()
            after[label] = response.status_code
            assert response.status_code in (200, 204, 302), (label, response.status_code)
        assert client.session[selection_key] == [str(first.pk), str(second.pk)]
        assert Book.objects.filter(title="New").count() == 2
        assert Job.objects.get(pk=waiting.pk).status == Status.CANCELLED
    assert edit(x).status_code == 204
    report(
        29,
        "web writes while a job holds the database",
        busy_timeout_ms=None if on_postgres() else WEB_BUSY_TIMEOUT_MS,
        during_job={label: list(answer) for label, answer in during.items()},  # status, s
        declared_object_edit=declared.status_code,
        after_job=after or "committed during the job",
        selection_kept=True,
    )
