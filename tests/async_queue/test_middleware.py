import contextlib
import json
import sqlite3

import pytest
from django.db import OperationalError, connection, transaction
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from async_queue import Job, schedule
from async_queue.checks import busy_middleware_messages, check_busy_middleware
from async_queue.locks import hold
from async_queue.middleware import BUSY_EVENT, BUSY_MESSAGE, busy_response
from async_queue.sql import is_database_busy
from powercrud.selection import Selection
from tests.conftest import make_user
from tests.crudapp.bulk_views import BookView
from tests.crudapp.models import Book
from tests.testapp import tasks
from tests.testapp.models import Record

HX = {"HTTP_HX_REQUEST": "true"}
BUSY = "async_queue.middleware.DatabaseBusyMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite's single write lock (PostgreSQL has none)"
)


@contextlib.contextmanager
def locked_database(busy_timeout_ms: int = 200):
    """Another connection holds SQLite's write lock, as a running job's transaction does.

    This process's connection gives up after ``busy_timeout_ms`` instead of 20 s.
    """
    writer = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        (previous,) = cursor.fetchone()
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    writer.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {int(previous)}")


# -- recognising a busy database -----------------------------------------------------------


def test_a_locked_database_is_recognised_through_the_exception_chain():
    locked = OperationalError("database is locked")
    assert is_database_busy(locked)
    assert is_database_busy(sqlite3.OperationalError("database table is locked"))
    wrapped = RuntimeError("the session could not be saved")
    wrapped.__context__ = locked  # as when raised while handling the lock error
    assert is_database_busy(wrapped)
    assert not is_database_busy(OperationalError("no such table: x"))
    assert not is_database_busy(ValueError("database is locked"))


def test_the_busy_answer_is_a_page_or_an_htmx_fragment_and_event():
    page = busy_response(RequestFactory().post("/x/", HTTP_REFERER="http://testserver/list/"))
    assert page.status_code == 503
    assert page["Retry-After"] == "5"
    assert BUSY_MESSAGE in page.content.decode()
    assert 'href="http://testserver/list/"' in page.content.decode()
    with override_settings(ASYNC_QUEUE={"BUSY_RETRY_AFTER": 9}):
        fragment = busy_response(RequestFactory().post("/x/", **HX))
    assert fragment.status_code == 503
    assert fragment["Retry-After"] == "9"
    assert "<html" not in fragment.content.decode()
    assert json.loads(fragment["HX-Trigger"]) == {
        BUSY_EVENT: {"message": BUSY_MESSAGE, "retryAfter": 9}
    }


# -- real locks: a write and a session save behind another writer ---------------------------


@sqlite_only
@pytest.mark.django_db(transaction=True)
def test_a_write_behind_the_lock_answers_503_and_changes_nothing(superuser_client):
    job = schedule(tasks.echo)
    url = reverse("async_queue:job-cancel", args=[job.pk])
    with locked_database():
        response = superuser_client.post(url)
        fragment = superuser_client.post(url, **HX)
    assert (response.status_code, fragment.status_code) == (503, 503)
    assert response["Retry-After"] == "5"
    assert BUSY_EVENT in fragment["HX-Trigger"]
    assert Job.objects.get(pk=job.pk).status == "queued"
    assert superuser_client.post(url).status_code == 302  # and once the lock is gone, it works
    assert Job.objects.get(pk=job.pk).status == "cancelled"


@sqlite_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.crudapp.bulk_urls")
def test_a_session_that_cannot_be_saved_answers_503_and_keeps_its_selection(superuser_client):
    first, second = Book.objects.create(title="A"), Book.objects.create(title="B")
    key = Selection.key_for(BookView, Book)
    select = reverse("book-select")
    assert (
        superuser_client.post(select, {"action": "toggle", "toggle": first.pk}, **HX).status_code
        == 200
    )
    with locked_database():
        # Without the middleware SessionMiddleware answers 400 and the click is lost
        # silently; with it, 503 and the session as it was.
        response = superuser_client.post(select, {"action": "toggle", "toggle": second.pk}, **HX)
    assert response.status_code == 503
    assert BUSY_EVENT in response["HX-Trigger"]
    assert superuser_client.session[key] == [str(first.pk)]
    assert (
        superuser_client.post(select, {"action": "toggle", "toggle": second.pk}, **HX).status_code
        == 200
    )
    assert superuser_client.session[key] == [str(first.pk), str(second.pk)]


@sqlite_only
@pytest.mark.django_db(transaction=True)
def test_hold_behind_a_writer_that_declared_nothing_raises_the_lock_error_not_a_conflict():
    with (
        locked_database(),
        pytest.raises(OperationalError, match="database is locked"),
        transaction.atomic(),
        hold("some-object"),
    ):
        Record.objects.create(label="never")
    assert not Record.objects.exists()


@sqlite_only
@pytest.mark.django_db(transaction=True)
def test_a_login_behind_the_lock_answers_503():
    make_user("ann", staff=True, password="pw-for-tests")
    client = Client()
    with locked_database():
        response = client.post(
            "/admin/login/?next=/admin/", {"username": "ann", "password": "pw-for-tests"}
        )
    assert response.status_code == 503
    assert "_auth_user_id" not in client.session
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "ann", "password": "pw-for-tests"}
    )
    assert response.status_code == 302


# -- the system check -------------------------------------------------------------------------


def test_the_check_warns_on_sqlite_without_the_middleware_or_with_it_too_early():
    sqlite = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}}
    postgres = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"}}
    cases = [
        (sqlite, [SESSIONS], ["async_queue.W030"]),
        (sqlite, [BUSY, SESSIONS], ["async_queue.W031"]),
        (sqlite, [SESSIONS, BUSY], []),
        (postgres, [SESSIONS], []),
    ]
    for databases, middleware, expected in cases:
        found = [m.id for m in busy_middleware_messages(databases, middleware)]
        assert found == expected, (databases, middleware)
    assert check_busy_middleware() == []  # the test settings have it, in its place
