"""The polled fragments are async views: served through ASGI with Django's AsyncClient."""

import asyncio

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.test import AsyncClient
from django.urls import resolve

from async_queue import Status
from async_queue.models import Job
from async_queue.sql import dialect
from async_queue.views import JobLiveView, JobRowView
from tests.async_queue.test_views import (
    make_failed,
    make_running,
    make_succeeded,
    url,
)
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)
HX = {"HX-Request": "true"}


def run(coroutine_function, *args):
    """Run a coroutine as an ASGI server would, from this (sync) test."""
    return async_to_sync(coroutine_function)(*args)


async def signed_in(user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


def test_the_polled_fragments_are_async_views():
    assert JobRowView.view_is_async
    assert JobLiveView.view_is_async
    for name in ("job-row", "job-live"):
        assert iscoroutinefunction(resolve(url(name, Job(pk=1))).func)


def test_a_running_job_row_polls_and_a_finished_one_answers_286(superuser):
    running = make_running(current=3, total=4, message="almost")
    done = make_succeeded()

    async def poll():
        client = await signed_in(superuser)
        return (
            await client.get(url("job-row", running), {"shown": "running"}, headers=HX),
            await client.get(url("job-row", done), {"shown": "running"}, headers=HX),
        )

    live, finished = run(poll)
    assert live.status_code == 200
    body = live.content.decode()
    assert "75%" in body
    assert "almost" in body
    assert 'hx-trigger="every 1s"' in body
    assert "HX-Trigger" not in live.headers
    assert finished.status_code == 286  # htmx stops polling
    assert finished.headers["HX-Trigger"] == JobRowView.changed_event


def test_the_live_panel_of_a_finished_job_brings_its_errors(superuser):
    failed = make_failed(message="it broke", attempts=2)

    async def poll():
        client = await signed_in(superuser)
        return await client.get(url("job-live", failed), headers=HX)

    response = run(poll)
    assert response.status_code == 286
    assert response.content.decode().count("it broke") >= 2  # one per attempt


def test_actions_follow_the_permissions_looked_up_asynchronously():
    owner = make_user("owner", "change_job")
    viewer = make_user("viewer")
    mine = make_running(user=owner)
    theirs = make_running(user=viewer)

    async def poll():
        owner_client, viewer_client = await signed_in(owner), await signed_in(viewer)
        return (
            await owner_client.get(url("job-row", mine), headers=HX),
            await owner_client.get(url("job-row", theirs), headers=HX),
            await viewer_client.get(url("job-row", theirs), headers=HX),
        )

    own, others, without_permission = run(poll)
    assert own.status_code == 200
    assert "/cancel/" in own.content.decode()
    assert others.status_code == 404  # another user's job does not exist for them
    assert without_permission.status_code == 200
    assert "/cancel/" not in without_permission.content.decode()


def test_anonymous_polls_are_sent_to_the_login_page():
    job = make_running()

    async def poll():
        client = AsyncClient()
        return (
            await client.get(url("job-row", job)),
            await client.get(
                url("job-row", job), headers={**HX, "HX-Current-URL": "http://testserver/jobs/"}
            ),
        )

    page, fragment = run(poll)
    assert page.status_code == 302
    assert page.url.startswith(f"{settings.LOGIN_URL}?next=/jobs/")
    assert fragment.status_code == 200  # htmx follows HX-Redirect with a full page load
    assert fragment.headers["HX-Redirect"] == f"{settings.LOGIN_URL}?next=/jobs/"


def test_only_get_is_allowed(superuser):
    job = make_running()

    async def post():
        client = await signed_in(superuser)
        return await client.post(url("job-live", job))

    assert run(post).status_code == 405


def test_many_concurrent_polls_are_served_by_one_event_loop(superuser):
    jobs = [make_running(current=n, total=20) for n in range(20)]

    async def poll_all():
        client = await signed_in(superuser)
        return await asyncio.gather(*(client.get(url("job-row", job), headers=HX) for job in jobs))

    responses = run(poll_all)
    assert [response.status_code for response in responses] == [200] * 20
    for job, response in zip(jobs, responses, strict=True):
        assert f'id="job-{job.pk}"' in response.content.decode()


def test_live_progress_from_the_store_reaches_an_async_poll(superuser):
    """On SQLite the side database is read in a worker thread whose connection is closed."""
    job = make_running()
    store = dialect("default").progress_store()
    store.write(job, 7, 10, "from the store")
    store.close()

    async def poll():
        client = await signed_in(superuser)
        return await client.get(url("job-live", job), headers=HX)

    response = run(poll)
    assert response.status_code == 200
    body = response.content.decode()
    assert "from the store" in body
    assert "70%" in body
    assert Job.objects.get(pk=job.pk).status == Status.RUNNING


def test_a_poll_through_the_real_asgi_handler(superuser):
    """Django's ASGIHandler (what uvicorn or daphne call), with a session cookie."""
    job = make_running(current=1, total=2)
    client = AsyncClient()
    run(client.aforce_login, superuser)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    application = get_asgi_application()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url("job-row", job),
        "raw_path": url("job-row", job).encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"hx-request", b"true"),
            (b"cookie", cookie.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []

    received: list[int] = []

    async def receive() -> dict:
        if not received:
            received.append(1)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected (cancelled at the end)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    run(application, scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 200
    assert f'id="job-{job.pk}"' in body.decode()
    assert "50%" in body.decode()
