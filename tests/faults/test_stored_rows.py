"""Row 21: no stored row breaks a page, and the worker fails rows it cannot run.

Rows are forged straight into the job table (``tests.faults.stored``): args,
kwargs, meta and result nested 1,000 levels deep and as deep as the database
stores (100,000 on SQLite with its JSON check off; PostgreSQL's ``jsonb`` refuses
deeper than its stack allows, found by bisection), a 10 MB result, a million
keys, multi-megabyte strings in the JSON and in the error columns, and text that
is not JSON at all (SQLite). Every page that shows a job is then requested as
staff: the dashboard's list (with and without filters) and its fragments, each
job's page and polled fragments, the admin's changelists and change pages, and
powercrud's bulk progress modal and conflict notice for jobs pointed at a book.
Each must answer with its normal status, under a size bound, showing the
unreadable values' notes.

A real worker is then given forged rows whose arguments it cannot pass (too deep
to decode, not JSON, not a list or an object) among ordinary ledger jobs, and
jobs returning just up to and just over ``MAX_RESULT_BYTES``: the forged rows fail
at once with a readable error and call nothing, the oversized result fails its
attempt with a clear error, and the worker goes on.
"""

from __future__ import annotations

import collections
import json
import statistics
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from async_queue import Job, JobError, JobLock, Status, schedule
from async_queue.conf import queue_settings
from async_queue.locks import lock_key
from tests.conftest import login, make_user, wait_for
from tests.crudapp.models import Book
from tests.faults.conftest import Ledger, on_postgres, report, size
from tests.faults.stored import deepest, forge, nested_list, nested_object

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.crudapp.bulk_urls")]

HTMX = {"HTTP_HX_REQUEST": "true"}
QUICKBOOK = "tests.crudapp.bulk_views.QuickBookView"
WANTED_DEPTH = 100_000
PAGE_BOUND = 2 * 1024 * 1024  # bytes of HTML a page may answer, whatever the row holds
UNREADABLE = "[unreadable:"
CUT = "more bytes not shown]"


def make_job(owner: User, status: str, name: str = "tests.testapp.tasks.echo", **fields) -> Job:
    now = timezone.now()
    if status != Status.QUEUED:
        fields = {"attempts": 1, "started_at": now, "worker": "host:1", **fields}
    if status in (Status.SUCCEEDED, Status.FAILED):
        fields = {"finished_at": now, **fields}
    if status == Status.FAILED:
        fields = {"max_attempts": 1, "last_error": "builtins.RuntimeError: boom", **fields}
    if status == Status.RUNNING:
        fields = {"progress_current": 1, "progress_total": 3, "progress_message": "m", **fields}
    return Job.objects.create(name=name, status=status, user=owner, run_after=now, **fields)


def add_error(job: Job, message: str = "boom", traceback: str = "Traceback ...") -> JobError:
    return JobError.objects.create(
        job=job,
        attempt=1,
        worker="host:1",
        exception="builtins.RuntimeError",
        message=message,
        traceback=traceback,
    )


def forge_rows(owner: User, book: Book, depth: int) -> dict[str, Job]:
    """The forged jobs, by label."""
    big = int(size(2_000_000, 10_000_000))
    keys = int(size(20_000, 1_000_000))
    jobs: dict[str, Job] = {}
    for level in (1_000, depth):
        deep = {
            "args": nested_list(level),
            "kwargs": nested_object(level),
            "meta": nested_object(level),
            "result": nested_list(level),
        }
        for status in (Status.SUCCEEDED, Status.FAILED, Status.RUNNING):
            job = jobs[f"deep {level} {status}"] = make_job(owner, status)
            forge(job.pk, **deep)
            if status == Status.FAILED:
                add_error(job)
    # Readable, just under Python's decoder limit: walked, not decoded-and-refused.
    job = jobs["deep 500 succeeded"] = make_job(owner, Status.SUCCEEDED)
    forge(job.pk, args=nested_list(500), kwargs=nested_object(500), result=nested_list(500))

    job = jobs["10 MB result"] = make_job(owner, Status.SUCCEEDED)
    forge(job.pk, result=json.dumps({"blob": "x" * big, "tail": list(range(1000))}))
    job = jobs["many keys"] = make_job(owner, Status.SUCCEEDED)
    many = json.dumps({f"key{index}": index for index in range(keys)})
    forge(job.pk, kwargs=many, meta=many, result=many)
    job = jobs["huge strings"] = make_job(owner, Status.FAILED, last_error="e" * big)
    forge(
        job.pk, args=json.dumps(["y" * big, "é" * (big // 2)]), kwargs=json.dumps({"s": "z" * big})
    )
    add_error(job, message="m" * big, traceback="t" * big)
    if not on_postgres():  # jsonb refuses text that is not JSON; SQLite stores it
        job = jobs["not JSON"] = make_job(owner, Status.FAILED)
        forge(job.pk, args="not json [", kwargs='{"a": ', meta="nope", result='{"unterminated')
        add_error(job)

    # powercrud: a bulk job of QuickBookView (so its modal shows it) with deep and huge
    # values, running and holding a book (so the book's edit page names it).
    meta = json.dumps({"powercrud": {"view": QUICKBOOK, "action": "edit", "count": 3}})
    job = jobs["powercrud running"] = make_job(owner, Status.RUNNING)
    forge(job.pk, meta=meta, args=nested_list(depth), kwargs=nested_object(depth))
    JobLock.objects.create(job=job, key=lock_key(book))
    job = jobs["powercrud done"] = make_job(owner, Status.SUCCEEDED)
    odd = {"view": QUICKBOOK, "action": "edit", "count": json.loads(nested_list(300))}
    forge(
        job.pk,
        meta=json.dumps({"powercrud": odd}),
        kwargs=json.dumps({"pks": [json.loads(nested_list(300)), "1"]}),
        result=json.dumps({"updated": "x" * big, "missing": [1]}),
    )
    job = jobs["powercrud failed"] = make_job(owner, Status.FAILED, last_error="e" * big)
    forge(job.pk, meta=meta, result=nested_list(depth))
    add_error(job, message="m" * big, traceback="t" * big)
    return jobs


def pages(jobs: dict[str, Job], book: Book) -> dict[str, tuple[str, dict[str, str], set[int]]]:
    """``{label: (url, headers, statuses it may answer)}`` of every page showing the jobs."""
    ok, fragment = {200}, {200, 286}
    job_list = reverse("async_queue:job-list")
    urls: dict[str, tuple[str, dict[str, str], set[int]]] = {
        "list": (job_list, {}, ok),
        "list fragment": (job_list, HTMX, ok),
        "list by user": (f"{job_list}?user=root", {}, ok),
        "list by name": (f"{job_list}?name=tests.testapp.tasks.echo", {}, ok),
        "list by queue": (f"{job_list}?queue=default", {}, ok),
        "list search": (f"{job_list}?q=echo", {}, ok),
        "admin changelist": (reverse("admin:async_queue_job_changelist"), {}, ok),
        "admin changelist filtered": (
            reverse("admin:async_queue_job_changelist") + "?status__exact=failed&q=echo",
            {},
            ok,
        ),
        "admin error changelist": (reverse("admin:async_queue_joberror_changelist"), {}, ok),
    }
    for status in Status:
        urls[f"list {status}"] = (f"{job_list}?status={status}", {}, ok)
    for label, job in jobs.items():
        args = [job.pk]
        urls[f"list #{label}"] = (f"{job_list}?q=%23{job.pk}", {}, ok)
        urls[f"detail {label}"] = (reverse("async_queue:job-detail", args=args), {}, ok)
        urls[f"row {label}"] = (reverse("async_queue:job-row", args=args), HTMX, fragment)
        urls[f"live {label}"] = (reverse("async_queue:job-live", args=args), HTMX, fragment)
        urls[f"admin {label}"] = (reverse("admin:async_queue_job_change", args=args), {}, ok)
        for error in JobError.objects.filter(job=job):
            admin_url = reverse("admin:async_queue_joberror_change", args=[error.pk])
            urls[f"admin error {label}"] = (admin_url, {}, ok)
    for label in ("powercrud running", "powercrud done", "powercrud failed"):
        status = reverse("quickbook-bulk-status", kwargs={"job_pk": jobs[label].pk})
        urls[f"bulk modal {label}"] = (status, {}, ok)
        urls[f"bulk modal fragment {label}"] = (status, HTMX, fragment)
    # The book a forged running job holds: its edit page answers 409 naming the job.
    urls["book edit conflict"] = (reverse("quickbook-update", args=[book.pk]), {}, {409})
    urls["book edit conflict fragment"] = (
        reverse("quickbook-update", args=[book.pk]),
        HTMX,
        {409},
    )
    return urls


def test_every_page_renders_any_stored_row(settings):
    """Row 21: deep, huge and malformed rows: every page answers, bounded, with notes."""
    root = make_user("root", superuser=True)
    book = Book.objects.create(title="held")
    probe = make_job(root, Status.SUCCEEDED)
    depth = deepest(probe.pk, WANTED_DEPTH)
    probe.delete()
    started = time.monotonic()
    jobs = forge_rows(root, book, depth)
    forged_in = time.monotonic() - started
    # Some rows must load as unreadable: deeper than Python decodes (and, on SQLite, not JSON).
    unreadable = [
        label for label, job in jobs.items() if isinstance(Job.objects.get(pk=job.pk).args, str)
    ]
    assert f"deep {depth} succeeded" in unreadable

    client = login(Client(), root)
    sizes: dict[str, int] = {}
    seconds: dict[str, float] = {}
    wrong: dict[str, int] = {}
    for label, (url, headers, statuses) in pages(jobs, book).items():
        begun = time.perf_counter()
        response = client.get(url, **headers)
        seconds[label] = time.perf_counter() - begun
        sizes[label] = len(response.content)
        if response.status_code not in statuses:
            wrong[label] = response.status_code
    assert wrong == {}, wrong
    too_big = {label: n for label, n in sizes.items() if n > PAGE_BOUND}
    assert too_big == {}, too_big

    # What the pages say about what they could not, or would not, show in full.
    def detail(label: str) -> str:
        url = reverse("async_queue:job-detail", args=[jobs[label].pk])
        return client.get(url).content.decode()

    for label in unreadable:
        page = detail(label)
        assert UNREADABLE in page, (label, page[page.find("<pre") :][:3000])
    assert CUT in detail("10 MB result")
    assert CUT in detail("many keys")
    huge = detail("huge strings")
    assert huge.count(CUT) >= 4  # two args, kwargs, the error's message and traceback
    admin = client.get(reverse("admin:async_queue_job_change", args=[jobs["huge strings"].pk]))
    assert CUT in admin.content.decode()
    readable = detail("deep 500 succeeded")
    assert UNREADABLE not in readable
    assert readable.count("[") > 400  # args and result walked level by level (then cut)
    conflict = client.get(reverse("quickbook-update", args=[book.pk])).content.decode()
    assert f'data-job="{jobs["powercrud running"].pk}"' in conflict
    done = client.get(
        reverse("quickbook-bulk-status", kwargs={"job_pk": jobs["powercrud done"].pk})
    )
    assert "Updated 0 books." in done.content.decode()

    biggest = max(sizes, key=sizes.__getitem__)
    slowest = max(seconds, key=seconds.__getitem__)
    report(
        21,
        "stored rows: pages",
        deepest_stored=depth,
        python_decodes_1000_deep="deep 1000 succeeded" not in unreadable,
        rows=len(jobs),
        pages=len(sizes),
        wrong_status=0,
        largest_page_bytes=sizes[biggest],
        largest_page=biggest,
        page_bound_bytes=PAGE_BOUND,
        show_max_bytes=queue_settings.SHOW_MAX_BYTES,
        median_page_seconds=round(statistics.median(seconds.values()), 4),
        slowest_page_seconds=round(seconds[slowest], 3),
        slowest_page=slowest,
        list_seconds=round(seconds["list"], 3),
        admin_changelist_seconds=round(seconds["admin changelist"], 3),
        slowest_pages={
            label: round(seconds[label], 2)
            for label in sorted(seconds, key=seconds.__getitem__)[-6:]
        },
        forged_in_seconds=round(forged_in, 1),
        big_bytes=int(size(2_000_000, 10_000_000)),
        many_keys=int(size(20_000, 1_000_000)),
    )


def test_the_worker_fails_rows_it_cannot_run_and_results_over_the_limit(
    ledger: Ledger, start_worker
):
    """Row 21: unreadable arguments fail at once, calling nothing; oversized results fail."""
    probe = Job.objects.create(name="tests.faultapp.jobs.ledger")
    depth = deepest(probe.pk, WANTED_DEPTH)
    probe.delete()
    bad = {
        f"args {depth} deep": {"args": nested_list(depth)},
        f"kwargs {depth} deep": {"kwargs": nested_object(depth)},
        "args a string": {"args": '"abc"'},
        "kwargs a list": {"kwargs": "[1, 2]"},
    }
    if not on_postgres():
        bad["args not JSON"] = {"args": "not json ["}
        bad["kwargs not JSON"] = {"kwargs": '{"counter": '}
    rounds = int(size(3, 20))
    normal = ledger.schedule(rounds)
    forged: dict[int, str] = {}
    for _ in range(rounds):
        for label, columns in bad.items():
            job = Job.objects.create(
                name="tests.faultapp.jobs.ledger",
                kwargs={"counter": ledger.counter},
                max_attempts=5,
            )
            forge(job.pk, **columns)
            forged[job.pk] = label
    normal += ledger.schedule(rounds)
    limit = queue_settings.MAX_RESULT_BYTES
    over = schedule("tests.faultapp.jobs_stored.returns_json", [limit + 1], max_attempts=1)
    at_limit = schedule("tests.faultapp.jobs_stored.returns_json", [limit])

    worker = start_worker("--forever", "--sleep", "0.1", "-v", "0", env=ledger.env)
    started = time.monotonic()
    every = [*normal, *forged, over.pk, at_limit.pk]
    wait_for(lambda: Job.objects.filter(pk__in=every).finished().count() == len(every), 120)
    drained = time.monotonic() - started
    assert worker.process.poll() is None, "the worker stopped"
    worker.kill()
    assert "Traceback" not in worker.stderr, worker.stderr

    # Forged rows: failed at their first attempt, nothing called, a readable reason.
    executed = ledger.executions()
    assert [pk for pk in forged if executed[pk]] == []
    for job in Job.objects.filter(pk__in=list(forged)):
        assert (job.status, job.attempts) == (Status.FAILED, 1), (forged[job.pk], job.status)
        error = JobError.objects.get(job=job)
        assert error.exception == "async_queue.exceptions.UnreadableArguments"
        assert "nothing was called" in error.message
        assert "cannot be read" in error.message or "must be a JSON" in error.message
        assert len(error.message) < 1000, len(error.message)  # readable, not the row
    ledger.assert_exactly_once(normal)

    # Results: the limit itself is stored; one byte more fails the attempt, clearly.
    over.refresh_from_db()
    at_limit.refresh_from_db()
    assert at_limit.status == Status.SUCCEEDED
    assert len(json.dumps(at_limit.result)) == limit
    assert over.status == Status.FAILED
    assert over.result is None
    assert f"{limit + 1:,} bytes of JSON, over ASYNC_QUEUE['MAX_RESULT_BYTES']" in over.last_error
    reasons = collections.Counter(
        "cannot be read" if "cannot be read" in e.message else "wrong type"
        for e in JobError.objects.filter(job__in=list(forged))
    )
    report(
        21,
        "stored rows: worker",
        deepest_stored=depth,
        forged_rows=len(forged),
        kinds=len(bad),
        failed_first_attempt=len(forged),
        executed=0,
        reasons=dict(reasons),
        normal_jobs=len(normal),
        max_result_bytes=limit,
        over_limit_error=over.last_error[:160],
        seconds=round(drained, 1),
    )
