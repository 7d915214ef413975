"""Row 16: who may see and do what, as one matrix over the dashboard and powercrud's endpoints.

Every (user, method, URL) pair is requested and its status compared with the
expected one; all mismatches are reported together. The users: anonymous, an
owner without permissions, another non-staff user with every job and book
permission (who still must not reach the owner's jobs), a user who may only view
books, and a superuser. Content checks follow: non-staff lists show only their
own jobs, buttons only appear with the permission, and a refused request changed
nothing. CSRF is checked with ``Client(enforce_csrf_checks=True)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from async_queue import Job, Status
from tests.conftest import login, make_user
from tests.crudapp.models import Book
from tests.faults.conftest import report

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.crudapp.bulk_urls")]

HTMX = {"HTTP_HX_REQUEST": "true"}
LOGIN = "/accounts/login/?next="
FRAGMENT = {200, 286}  # a fragment of a finished job answers 286 (stop polling)
BOOK_PERMS = ("crudapp.view_book", "crudapp.change_book", "crudapp.delete_book")
JOB_PERMS = ("async_queue.change_job", "async_queue.delete_job")


def make_job(user: User | None, status: str, **fields: object) -> Job:
    now = timezone.now()
    if status != Status.QUEUED:
        fields = {"attempts": 1, "started_at": now, "worker": "host:1", **fields}
    if status in (Status.FAILED, Status.SUCCEEDED):
        fields = {"finished_at": now, **fields}
    if status == Status.FAILED:
        fields = {"max_attempts": 1, "last_error": "builtins.RuntimeError: boom", **fields}
    return Job.objects.create(
        name="tests.testapp.tasks.echo", status=status, user=user, run_after=now, **fields
    )


def bulk_job(user: User) -> Job:
    """A bulk edit job of ``QuickBookView``, as powercrud schedules it (already finished)."""
    view = "tests.crudapp.bulk_views.QuickBookView"
    return make_job(
        user,
        Status.SUCCEEDED,
        kwargs={"model": "crudapp.book", "pks": []},
        meta={"powercrud": {"view": view, "action": "edit", "count": 0}},
        result={"updated": 0},
    )


@dataclass
class Case:
    who: str
    method: str
    url: str
    expected: set[int]
    headers: dict[str, str] = field(default_factory=dict)
    location: str | None = None  # expected start of the Location / HX-Redirect header


def job_url(name: str, job: Job) -> str:
    return reverse(f"async_queue:{name}", args=[job.pk])


def test_dashboard_and_bulk_endpoints_security_matrix():
    """Row 16: login, visibility, permissions, 405 on GET to mutating URLs, CSRF."""
    owner = make_user("owner")
    other = make_user("other", *JOB_PERMS, *BOOK_PERMS)
    viewer = make_user("viewer", "crudapp.view_book")
    root = make_user("root", superuser=True)
    mine = {
        "failed": make_job(owner, Status.FAILED),
        "queued": make_job(owner, Status.QUEUED),
        "done": make_job(owner, Status.SUCCEEDED),
    }
    theirs = make_job(other, Status.FAILED)
    theirs_done = make_job(other, Status.SUCCEEDED)
    bulk_of_owner, bulk_of_other = bulk_job(owner), bulk_job(other)
    book = Book.objects.create(title="Dune")

    clients: dict[str, Client] = {"anonymous": Client()}
    for user in (owner, other, viewer, root):
        clients[user.username] = login(Client(), user)

    cases: list[Case] = []
    job_list = reverse("async_queue:job-list")
    pages = [("job-detail", {200}), ("job-row", FRAGMENT), ("job-live", FRAGMENT)]
    actions = [("job-retry", "failed"), ("job-cancel", "queued"), ("job-delete", "done")]

    # Anonymous: every dashboard URL sends to the login page; htmx gets a whole-page redirect.
    cases.append(Case("anonymous", "get", job_list, {302}, location=LOGIN))
    cases.append(Case("anonymous", "get", job_list, {200}, HTMX, location=LOGIN))
    for name, _ in pages:
        url = job_url(name, mine["failed"])
        cases.append(Case("anonymous", "get", url, {302}, location=LOGIN + url))
    for name, state in actions:
        url = job_url(name, mine[state])
        cases.append(Case("anonymous", "post", url, {302}, location=LOGIN + url))
    for who in ("anonymous", "owner", "other"):
        cases.append(Case(who, "get", reverse("async_queue:metrics"), {403}))
    cases.append(Case("root", "get", reverse("async_queue:metrics"), {200}))

    # The owner (no permissions): own jobs readable, every action 403, others' jobs 404.
    for name, statuses in pages:
        for job in mine.values():
            cases.append(Case("owner", "get", job_url(name, job), statuses))
        cases.append(Case("owner", "get", job_url(name, theirs), {404}))
    for name, state in actions:
        cases.append(Case("owner", "post", job_url(name, mine[state]), {403}))
        cases.append(Case("owner", "post", job_url(name, theirs), {404}))

    # Another user with every job permission still cannot reach the owner's jobs.
    for name, _ in pages:
        cases.append(Case("other", "get", job_url(name, mine["failed"]), {404}))
    for name, state in actions:
        cases.append(Case("other", "post", job_url(name, mine[state]), {404}))
        cases.append(Case("other", "post", job_url(name, mine[state]), {404}, HTMX))

    # GET (and PUT) on a mutating URL: 405, whoever asks.
    for name, state in actions:
        for who in ("root", "owner", "other"):
            cases.append(Case(who, "get", job_url(name, mine[state]), {405}))
        cases.append(Case("root", "put", job_url(name, mine[state]), {405}))

    # powercrud: login, model permissions, 405, and bulk jobs only for their owner.
    book_list = reverse("book-list")
    mutating = [reverse("book-select"), reverse("book-bulk-edit"), reverse("book-bulk-delete")]
    cases.append(Case("anonymous", "get", book_list, {302}, location=LOGIN))
    for url in [*mutating, reverse("book-update", args=[book.pk])]:
        cases.append(Case("anonymous", "post", url, {302}, location=LOGIN))
    cases.append(Case("owner", "get", book_list, {403}))
    cases.append(Case("viewer", "get", book_list, {200}))
    for url in mutating[1:]:
        cases.append(Case("viewer", "post", url, {403}, HTMX))
    cases.append(Case("viewer", "post", reverse("book-update", args=[book.pk]), {403}))
    cases.append(Case("viewer", "post", reverse("book-delete", args=[book.pk]), {403}))
    for url in mutating:
        cases.append(Case("root", "get", url, {405}))
    status_url = "quickbook-bulk-status"
    mine_status = reverse(status_url, kwargs={"job_pk": bulk_of_other.pk})
    foreign_status = reverse(status_url, kwargs={"job_pk": bulk_of_owner.pk})
    cases.append(Case("other", "get", mine_status, {200}))
    cases.append(Case("other", "get", foreign_status, {404}))
    cases.append(Case("viewer", "get", mine_status, {403}))
    cases.append(Case("root", "get", foreign_status, {200}))

    before = dict(Job.objects.values_list("pk", "status"))
    mismatches = []
    for case in cases:
        response = getattr(clients[case.who], case.method)(case.url, **case.headers)
        problem = ""
        if response.status_code not in case.expected:
            problem = f"status {response.status_code}"
        elif case.location is not None:
            where = response.get("Location") or response.get("HX-Redirect") or ""
            if not where.startswith(case.location):
                problem = f"redirects to {where!r}"
        if problem:
            mismatches.append(f"{case.who} {case.method.upper()} {case.url}: {problem}")
    assert mismatches == [], "\n".join(mismatches)
    # Nothing refused changed a job.
    assert dict(Job.objects.values_list("pk", "status")) == before

    # Non-staff lists show only their own jobs, whatever the filters ask.
    def listed(who: str, query: str = "") -> set[int]:
        content = clients[who].get(f"{job_list}{query}").content.decode()
        return {int(pk) for pk in re.findall(r'<tr id="job-(\d+)"', content)}

    own = {job.pk for job in mine.values()} | {bulk_of_owner.pk}
    assert listed("owner") == own
    assert listed("owner", f"?q=%23{theirs.pk}") == set()
    assert listed("owner", "?user=other") == own  # the user filter is staff-only
    assert listed("other") == {theirs.pk, theirs_done.pk, bulk_of_other.pk}
    assert listed("root") == set(Job.objects.values_list("pk", flat=True))

    # Buttons only with the permission.
    owner_pages = [clients["owner"].get(job_list)] + [
        clients["owner"].get(job_url("job-detail", job)) for job in mine.values()
    ]
    for page in owner_pages:
        content = page.content.decode()
        assert "aq-buttons" not in content
        assert not re.search(r"/(retry|cancel|delete)/", content)
    other_page = clients["other"].get(job_url("job-detail", theirs)).content.decode()
    assert f'action="/jobs/{theirs.pk}/retry/"' in other_page
    viewer_list = clients["viewer"].get(book_list).content.decode()
    assert "pc-bulk-check" not in viewer_list
    assert reverse("book-bulk-edit") not in viewer_list
    root_list = clients["root"].get(book_list).content.decode()
    assert "pc-bulk-check" in root_list  # the marker above is real

    # An allowed action does work (so the 404s and 403s above are not a broken view).
    response = clients["other"].post(job_url("job-retry", theirs))
    assert response.status_code == 302
    assert Job.objects.get(pk=theirs.pk).status == Status.QUEUED

    csrf_checks = check_csrf(root, mine["failed"], book)
    report(
        16,
        "dashboard security",
        requests=len(cases),
        mismatches=len(mismatches),
        csrf_checks=csrf_checks,
    )


def check_csrf(root: User, failed: Job, book: Book) -> int:
    """POSTs without the token are 403 and change nothing; with it they go through."""
    client = login(Client(enforce_csrf_checks=True), root)
    posts = [
        (job_url("job-retry", failed), {}),
        (job_url("job-cancel", failed), {}),
        (job_url("job-delete", failed), {}),
        (reverse("book-select"), {"action": "page", "page": [book.pk]}),
        (reverse("book-bulk-edit"), {"stage": "apply"}),
        (reverse("book-bulk-delete"), {"stage": "apply"}),
        (reverse("book-update", args=[book.pk]), {"title": "Forged"}),
        (reverse("book-delete", args=[book.pk]), {}),
    ]
    for url, data in posts:
        for headers in ({}, HTMX):
            response = client.post(url, data, **headers)
            assert response.status_code == 403, (url, headers, response.status_code)
    assert Job.objects.get(pk=failed.pk).status == Status.FAILED
    assert Book.objects.get(pk=book.pk).title == "Dune"
    client.get(reverse("async_queue:job-list"))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(job_url("job-retry", failed), HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302
    assert Job.objects.get(pk=failed.pk).status == Status.QUEUED
    return len(posts) * 2
