"""Row 17: secrets are redacted and markup escaped wherever a job is shown; tracebacks are safe.

A real worker runs a job whose kwargs hold a password and an API token, whose
meta holds an API key, and which fails with ``<script>`` in its message (its
frame holds the secrets as locals); another succeeds with secrets in its result,
and a third fails with a message far over the traceback cap in multi-byte
characters. Every page that shows jobs is then read: the dashboard's pages and
htmx fragments, the admin's changelists and change pages, powercrud's bulk
progress modal and the metrics text.
"""

from __future__ import annotations

import html

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from async_queue import Job, JobError, Status, schedule
from async_queue.conf import queue_settings
from async_queue.permissions import REDACTED
from tests.conftest import login, make_user, wait_for
from tests.faults.conftest import report, size

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.crudapp.bulk_urls")]

HTMX = {"HTTP_HX_REQUEST": "true"}
SCRIPT = "<script>alert('x')</script>"
SECRETS = {
    "password": "hunter2-pw",
    "api_token": "tok-31337",
    "api_key": "key-4242",
    "session": "sess-9999",
    "Authorization": "Bearer auth-5555",
}
QUICKBOOK = "tests.crudapp.bulk_views.QuickBookView"


def secret_values() -> list[str]:
    return list(SECRETS.values())


def leaks(content: str) -> list[str]:
    """What ``content`` gives away: secret values, or ``<script>`` unescaped."""
    found = [secret for secret in secret_values() if secret in content]
    if "<script>alert" in content:
        found.append("unescaped <script>")
    return found


def schedule_jobs(owner: User) -> dict[str, Job]:
    leak = schedule(
        "tests.faultapp.jobs_web.leak",
        kwargs={
            "password": SECRETS["password"],
            "api_token": SECRETS["api_token"],
            "note": SCRIPT,
        },
        meta={
            "api_key": SECRETS["api_key"],
            "label": SCRIPT,
            "powercrud": {"view": QUICKBOOK, "action": "edit", "count": 0},
        },
        max_attempts=1,
        user=owner,
    )
    echo = schedule(
        "tests.testapp.tasks.echo",
        args=[{"session": SECRETS["session"]}, SCRIPT],
        kwargs={"options": {"Authorization": SECRETS["Authorization"]}, "note": SCRIPT},
        user=owner,
    )
    huge = schedule(
        "tests.faultapp.jobs_web.fail_hugely",
        kwargs={"characters": int(size(100_000, 1_000_000))},
        max_attempts=1,
        user=owner,
    )
    return {"leak": leak, "echo": echo, "huge": huge}


def pages(jobs: dict[str, Job]) -> dict[str, tuple[str, dict[str, str]]]:
    """``{label: (url, headers)}`` of every page that shows these jobs."""
    urls: dict[str, tuple[str, dict[str, str]]] = {
        "dashboard list": (reverse("async_queue:job-list"), {}),
        "dashboard list fragment": (reverse("async_queue:job-list"), HTMX),
        "admin job changelist": (reverse("admin:async_queue_job_changelist"), {}),
        "admin error changelist": (reverse("admin:async_queue_joberror_changelist"), {}),
        "metrics": (reverse("async_queue:metrics"), {}),
    }
    for label, job in jobs.items():
        args = [job.pk]
        urls[f"dashboard detail {label}"] = (reverse("async_queue:job-detail", args=args), {})
        urls[f"dashboard row {label}"] = (reverse("async_queue:job-row", args=args), HTMX)
        urls[f"dashboard live {label}"] = (reverse("async_queue:job-live", args=args), HTMX)
        urls[f"admin job {label}"] = (reverse("admin:async_queue_job_change", args=args), {})
        for error in JobError.objects.filter(job=job):
            admin_url = reverse("admin:async_queue_joberror_change", args=[error.pk])
            urls[f"admin error {label}"] = (admin_url, {})
    status = reverse("quickbook-bulk-status", kwargs={"job_pk": jobs["leak"].pk})
    urls["powercrud bulk status"] = (status, {})
    urls["powercrud bulk status fragment"] = (status, HTMX)
    return urls


def run_to_the_end(jobs: dict[str, Job], start_worker) -> None:
    """Let a real worker run ``jobs``; reload them once all have finished."""
    worker = start_worker("--forever", "--sleep", "0.1", "-v", "0")
    wait_for(lambda: all(Job.objects.get(pk=job.pk).is_finished for job in jobs.values()), 60)
    worker.kill()
    for job in jobs.values():
        job.refresh_from_db()


def test_secrets_are_redacted_and_markup_escaped_everywhere(start_worker):
    """Row 17: no secret value and no live ``<script>`` on any page; tracebacks capped."""
    root = make_user("root", superuser=True)
    jobs = schedule_jobs(root)
    run_to_the_end(jobs, start_worker)
    assert jobs["leak"].status == Status.FAILED
    assert jobs["echo"].status == Status.SUCCEEDED
    assert jobs["huge"].status == Status.FAILED

    # Stored tracebacks: no frame locals, markup kept as text (escaped on display), capped.
    error = JobError.objects.get(job=jobs["leak"])
    assert f"RuntimeError: could not post {SCRIPT}" in error.traceback
    assert leaks(error.traceback) == ["unescaped <script>"]  # no secret, only the raw text
    limit = queue_settings.TRACEBACK_MAX_BYTES
    huge = JobError.objects.get(job=jobs["huge"])
    stored = len(huge.traceback.encode())
    assert stored <= limit, f"{stored} bytes stored, over the {limit}-byte cap"
    assert huge.traceback.startswith("Traceback (most recent call last):")
    assert huge.traceback.rstrip().endswith("é")
    assert "cut" in huge.traceback

    client = login(Client(), root)
    found: dict[str, list[str]] = {}
    redacted_on = []
    for label, (url, headers) in pages(jobs).items():
        response = client.get(url, **headers)
        assert response.status_code in (200, 286), (label, response.status_code)
        content = response.content.decode()
        if problems := leaks(content):
            found[label] = problems
        if REDACTED in content:
            redacted_on.append(label)
    assert found == {}, found
    escaped = html.escape(SCRIPT)
    detail = client.get(reverse("async_queue:job-detail", args=[jobs["leak"].pk]))
    assert escaped in detail.content.decode() or escaped.replace("&#x27;", "&#39;") in (
        detail.content.decode()
    )
    for label in ("dashboard detail leak", "dashboard detail echo", "admin job leak"):
        assert label in redacted_on, f"{label} shows no {REDACTED}"

    report(
        17,
        "secrets and markup",
        pages_checked=len(pages(jobs)),
        pages_leaking=len(found),
        redacted_on=len(redacted_on),
        traceback_source_bytes=2 * int(size(100_000, 1_000_000)),
        traceback_stored_bytes=stored,
        traceback_cap_bytes=limit,
    )
