import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from async_queue import Job, JobError, JobLock, Status, schedule
from async_queue.fields import UnreadableJSON
from async_queue.forms import JobFilterForm
from async_queue.permissions import REDACTED, redact
from async_queue.presenters import call_summary
from async_queue.templatetags.async_queue import duration
from async_queue.views import JobListView
from tests.conftest import login, make_user
from tests.testapp import tasks
from tests.testapp.models import Counter, Record

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"


# -- factories ---------------------------------------------------------------------------


def make_job(**fields) -> Job:
    fields.setdefault("name", "tests.testapp.tasks.echo")
    return Job.objects.create(**fields)


def make_failed(message: str = "boom", attempts: int = 1, **fields) -> Job:
    """Scheduled 10 s ago; attempt n failed at +2n s; the last one started a second earlier."""
    base = timezone.now() - timedelta(seconds=10)
    job = make_job(
        status=Status.FAILED,
        attempts=attempts,
        max_attempts=attempts,
        created_at=base,
        started_at=base + timedelta(seconds=2 * attempts - 1),
        finished_at=base + timedelta(seconds=2 * attempts),
        last_error=f"builtins.RuntimeError: {message}",
        worker="host:1",
        **fields,
    )
    for attempt in range(1, attempts + 1):
        JobError.objects.create(
            job=job,
            attempt=attempt,
            created_at=base + timedelta(seconds=2 * attempt),
            worker="host:1",
            exception="builtins.RuntimeError",
            message=message,
            traceback=f'Traceback (most recent call last):\n  File "x.py"\nRuntimeError: {message}',
        )
    return job


def make_running(current=None, total=None, message="", seconds=60.0, **fields) -> Job:
    fields = {
        "status": Status.RUNNING,
        "attempts": 1,
        "started_at": timezone.now() - timedelta(seconds=seconds),
        "worker": "host:1",
        "progress_current": current,
        "progress_total": total,
        "progress_message": message,
        **fields,
    }
    return make_job(**fields)


def make_succeeded(**fields) -> Job:
    now = timezone.now()
    fields = {"started_at": now - timedelta(seconds=2), "finished_at": now, **fields}
    return make_job(status=Status.SUCCEEDED, attempts=1, result={"ok": True}, **fields)


def url(name: str, job: Job | None = None) -> str:
    return reverse(f"async_queue:{name}", args=[job.pk] if job else [])


def row_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="job-(\d+)"', response.content.decode())]


# -- visibility --------------------------------------------------------------------------

PAGES = ["job-detail", "job-row", "job-live"]
ACTIONS = ["job-retry", "job-cancel", "job-delete"]


@pytest.mark.parametrize("name", ["job-list", *PAGES, *ACTIONS])
def test_anonymous_is_sent_to_login(client, name):
    job = make_failed()
    target = url(name, None if name == "job-list" else job)
    response = client.post(target) if name in ACTIONS else client.get(target)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={target}"
    Job.objects.get(pk=job.pk)  # nothing happened


def test_anonymous_htmx_request_redirects_the_whole_page(client):
    job = make_running()
    response = client.get(
        url("job-row", job), HTTP_HX_CURRENT_URL="http://testserver/jobs/", **HTMX
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/jobs/"


def test_staff_see_every_job(superuser_client):
    owner = make_user("owner")
    jobs = [make_job(user=owner), make_job(), make_failed()]
    response = superuser_client.get(url("job-list"))
    assert response.status_code == 200
    assert row_ids(response) == [job.pk for job in reversed(jobs)]
    assert b">owner</td>" in response.content  # the user column
    for name in PAGES:
        assert superuser_client.get(url(name, jobs[0])).status_code == 200


def test_users_see_only_their_own_jobs(client):
    owner, other = make_user("owner"), make_user("other")
    mine, theirs, nobodys = make_job(user=owner), make_job(user=other), make_job()
    login(client, owner)
    response = client.get(url("job-list"))
    assert row_ids(response) == [mine.pk]
    assert b'name="user"' not in response.content  # no user filter or column for them
    assert b'<th scope="col">User</th>' not in response.content
    for name in PAGES:
        assert client.get(url(name, mine)).status_code == 200
    for job in (theirs, nobodys):
        for name in PAGES:
            assert client.get(url(name, job)).status_code == 404


@pytest.mark.parametrize("name", ACTIONS)
def test_actions_on_someone_elses_job_are_404(client, name):
    other = make_user("other")
    job = make_failed(user=other)
    login(client, make_user("owner", "change_job", "delete_job"))
    assert client.post(url(name, job)).status_code == 404
    assert Job.objects.get(pk=job.pk).status == Status.FAILED


def test_inactive_staff_see_nothing(staff_client, staff_user):
    make_job()
    User.objects.filter(pk=staff_user.pk).update(is_active=False)
    response = staff_client.get(url("job-list"))
    assert response.status_code == 302  # the session no longer authenticates


# -- the list: counts, filters, search, pagination ----------------------------------------


def test_counts_by_status(superuser_client):
    make_job()
    make_job()
    make_running()
    make_failed()
    make_succeeded()
    make_job(status=Status.CANCELLED)
    content = superuser_client.get(url("job-list")).content.decode()
    counts = dict(
        re.findall(r'data-status="(\w+)">.*?<span class="aq-count-value">(\d+)</span>', content)
    )
    assert counts == {
        "all": "6",
        "queued": "2",
        "running": "1",
        "succeeded": "1",
        "failed": "1",
        "cancelled": "1",
    }


@pytest.mark.parametrize("status", list(Status))
def test_filter_by_status(superuser_client, status):
    jobs = {
        Status.QUEUED: make_job(),
        Status.RUNNING: make_running(),
        Status.SUCCEEDED: make_succeeded(),
        Status.FAILED: make_failed(),
        Status.CANCELLED: make_job(status=Status.CANCELLED),
    }
    response = superuser_client.get(url("job-list"), {"status": status.value})
    assert row_ids(response) == [jobs[status].pk]
    assert b'aria-current="true" data-status="' + status.value.encode() in response.content


def test_filter_by_queue_name_and_user(superuser_client):
    alice = make_user("alice")
    a = make_job(queue="mail")
    b = make_job(name="tests.testapp.tasks.record")
    c = make_job(user=alice)
    assert row_ids(superuser_client.get(url("job-list"), {"queue": "mail"})) == [a.pk]
    assert row_ids(
        superuser_client.get(url("job-list"), {"name": "tests.testapp.tasks.record"})
    ) == [b.pk]
    assert row_ids(superuser_client.get(url("job-list"), {"user": "alice"})) == [c.pk]
    assert row_ids(superuser_client.get(url("job-list"), {"user": "nobody"})) == []


def test_counts_follow_the_other_filters(superuser_client):
    make_job(queue="mail")
    make_failed(queue="mail")
    make_failed(queue="other")
    content = superuser_client.get(
        url("job-list"), {"queue": "mail", "status": "failed"}
    ).content.decode()
    assert re.search(r'data-status="all">.*?(\d+)</span>', content).group(1) == "2"
    assert re.search(r'data-status="failed">.*?(\d+)</span>', content).group(1) == "1"
    # each count links to its status under the same other filters
    assert 'href="/jobs/?queue=mail&amp;status=queued"' in content


def test_search_by_name_and_id(superuser_client):
    echo = make_job()
    record = make_job(name="tests.testapp.tasks.record")
    assert row_ids(superuser_client.get(url("job-list"), {"q": "RECORD"})) == [record.pk]
    assert row_ids(superuser_client.get(url("job-list"), {"q": str(echo.pk)})) == [echo.pk]
    assert row_ids(superuser_client.get(url("job-list"), {"q": f"#{echo.pk}"})) == [echo.pk]
    assert row_ids(superuser_client.get(url("job-list"), {"q": "nothing-like-it"})) == []


def test_search_matches_any_part_of_the_name_in_any_case(superuser_client, client):
    owner = make_user("owner")
    mine = make_failed(name="tests.testapp.tasks.record", user=owner)
    other = make_job(name="tests.testapp.tasks.record")
    make_job(name="tests.testapp.tasks.echo")
    assert row_ids(superuser_client.get(url("job-list"), {"q": "APP.TASKS.REC"})) == [
        other.pk,
        mine.pk,
    ]
    assert row_ids(superuser_client.get(url("job-list"), {"q": "rec", "status": "failed"})) == [
        mine.pk
    ]
    assert row_ids(superuser_client.get(url("job-list"), {"q": "rec", "user": "owner"})) == [
        mine.pk
    ]
    login(client, owner)
    assert row_ids(client.get(url("job-list"), {"q": "record"})) == [mine.pk]
    assert row_ids(client.get(url("job-list"), {"q": "echo"})) == []


def test_search_compares_a_bounded_number_of_names_and_says_so(superuser_client, monkeypatch):
    monkeypatch.setattr(JobFilterForm, "names_searched", 2)
    jobs = {name: make_job(name=f"tests.testapp.tasks.{name}") for name in ("a", "b", "c")}
    found = superuser_client.get(url("job-list"), {"q": "tasks.b"})
    assert row_ids(found) == [jobs["b"].pk]
    assert b"Searched the first 2 job names" in found.content
    # "c" is the third name alphabetically: not compared, and the page says why.
    missed = superuser_client.get(url("job-list"), {"q": "tasks.c"}, **HTMX)
    assert row_ids(missed) == []
    assert b"use the exact Name filter" in missed.content
    assert row_ids(superuser_client.get(url("job-list"), {"name": "tests.testapp.tasks.c"})) == [
        jobs["c"].pk
    ]
    monkeypatch.setattr(JobFilterForm, "names_searched", 3)
    assert (
        b"Searched the first" not in superuser_client.get(url("job-list"), {"q": "tasks"}).content
    )


def test_a_user_filter_from_a_non_staff_user_is_ignored(client):
    owner = make_user("owner")
    mine = make_job(user=owner)
    make_job(user=make_user("other"))
    login(client, owner)
    assert row_ids(client.get(url("job-list"), {"user": "other"})) == [mine.pk]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "bogus"},
        {"status": "queued'; DROP TABLE async_queue_job; --"},
        {"status": ["queued", "failed"]},
        {"ordering": "-password"},
        {"ordering": "user__password"},
        {"page": "x"},
        {"page": "-1"},
        {"before": "abc"},
        {"before": "-5"},
        {"before": str(2**70)},
        {"after": "1e9"},
        {"after": "0", "before": "0"},
        {"q": "a\x00b"},
        {"q": "9" * 40},
        {"q": "%_%"},
        {"queue": "x" * 1000},
        {"name": "\x00"},
        {"user": "\x00"},
        {"user__password__startswith": "a"},
    ],
)
def test_hostile_parameters_never_fail(superuser_client, params):
    make_job()
    response = superuser_client.get(url("job-list"), params)
    assert response.status_code == 200
    response = superuser_client.get(url("job-list"), params, **HTMX)
    assert response.status_code == 200


def test_invalid_filters_are_ignored_and_shown(superuser_client):
    job = make_job()
    response = superuser_client.get(url("job-list"), {"status": "bogus", "before": "abc"})
    assert row_ids(response) == [job.pk]
    assert b"status: Select a valid choice." in response.content
    assert b"(ignored)" in response.content


def test_keyset_pagination(superuser_client, monkeypatch):
    monkeypatch.setattr(JobListView, "paginate_by", 3)
    jobs = [make_job() for _ in range(7)]
    ids = [job.pk for job in reversed(jobs)]  # newest first
    first = superuser_client.get(url("job-list"))
    assert row_ids(first) == ids[:3]
    content = first.content.decode()
    assert "Newer" not in content
    older = re.search(r'href="([^"]+)" hx-get="[^"]+" rel="next"', content).group(1)
    assert older == f"/jobs/?before={ids[2]}"
    second = superuser_client.get(older.replace("&amp;", "&"))
    assert row_ids(second) == ids[3:6]
    third = superuser_client.get(f"/jobs/?before={ids[5]}")
    assert row_ids(third) == ids[6:]
    assert b'rel="next"' not in third.content
    newer = re.search(r'href="([^"]+)" hx-get="[^"]+" rel="prev"', third.content.decode())
    assert newer.group(1) == f"/jobs/?after={ids[6]}"
    assert row_ids(superuser_client.get(newer.group(1))) == ids[3:6]
    assert row_ids(superuser_client.get(f"/jobs/?after={ids[3]}")) == ids[:3]


def test_pagination_keeps_the_filters(superuser_client, monkeypatch):
    monkeypatch.setattr(JobListView, "paginate_by", 1)
    make_job(queue="mail")
    newest = make_job(queue="mail")
    make_job(queue="other")
    content = superuser_client.get(url("job-list"), {"queue": "mail"}).content.decode()
    assert f'href="/jobs/?queue=mail&amp;before={newest.pk}"' in content


def test_counts_are_one_statement_of_capped_counts(superuser_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_job()
    with CaptureQueriesContext(connection) as queries:
        superuser_client.get(url("job-list"), {"before": "1000"})
    counting = [query["sql"] for query in queries if "COUNT(" in query["sql"].upper()]
    assert len(counting) == 1
    # one capped subquery per status: nothing counts the whole table
    assert counting[0].upper().count("COUNT(") == len(Status)
    assert counting[0].upper().count("LIMIT 10001") == len(Status)


def test_counts_above_the_cap_show_a_plus(superuser_client, monkeypatch):
    monkeypatch.setattr(JobListView, "count_cap", 2)
    for _ in range(3):
        make_job()
    make_succeeded()
    content = superuser_client.get(url("job-list")).content.decode()
    values = dict(
        re.findall(r'data-status="(\w+)">.*?<span class="aq-count-value">([^<]*)</span>', content)
    )
    assert values["all"] == "2+"
    assert values["queued"] == "2+"
    assert values["succeeded"] == "1"
    assert values["failed"] == "0"


def test_an_id_search_looks_up_the_id_only(superuser_client):
    wanted = make_job(name="tests.testapp.tasks.echo")
    make_job(name=f"tests.testapp.tasks.job_{wanted.pk}")
    assert row_ids(superuser_client.get(url("job-list"), {"q": f"#{wanted.pk}"})) == [wanted.pk]
    assert len(row_ids(superuser_client.get(url("job-list"), {"q": str(wanted.pk)}))) == 2


# -- htmx: fragments and polling ---------------------------------------------------------


def test_list_answers_htmx_with_the_results_partial(superuser_client):
    job = make_running()
    full = superuser_client.get(url("job-list"))
    assert b"<html" in full.content
    assert b'<form class="aq-filters"' in full.content
    partial = superuser_client.get(url("job-list"), {"status": "running"}, **HTMX)
    content = partial.content.decode()
    assert partial.status_code == 200
    assert "<html" not in content
    assert "aq-filters" not in content
    assert content.lstrip().startswith('<div id="job-results"')
    assert f'<tr id="job-{job.pk}"' in content
    assert "HX-Request" in partial["Vary"]
    boosted = superuser_client.get(url("job-list"), HTTP_HX_BOOSTED="true", **HTMX)
    assert b"<html" in boosted.content
    restore = superuser_client.get(url("job-list"), HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX)
    assert b"<html" in restore.content


def test_unfinished_rows_poll_and_finished_rows_do_not(superuser_client):
    running, queued, done = make_running(), make_job(), make_succeeded()
    content = superuser_client.get(url("job-list")).content.decode()
    rows = dict(re.findall(r'<tr id="job-(\d+)"([^>]*)>', content))
    assert (
        f'hx-get="/jobs/{running.pk}/row/?shown=running" hx-trigger="every 1s"'
        in rows[str(running.pk)]
    )
    assert (
        f'hx-get="/jobs/{queued.pk}/row/?shown=queued" hx-trigger="every 3s"'
        in rows[str(queued.pk)]
    )
    assert "hx-trigger" not in rows[str(done.pk)]


def test_row_fragment_polls_until_the_job_ended_then_answers_286(superuser_client):
    job = make_running(current=1, total=4)
    response = superuser_client.get(url("job-row", job), **HTMX)
    assert response.status_code == 200
    content = response.content.decode()
    assert content.startswith(f'<tr id="job-{job.pk}"')
    assert 'hx-trigger="every 1s"' in content
    assert "<html" not in content

    Job.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    response = superuser_client.get(url("job-row", job), **HTMX)
    assert response.status_code == 286
    content = response.content.decode()
    assert f'<tr id="job-{job.pk}"' in content
    assert "hx-trigger" not in content
    assert "Succeeded" in content


def test_a_row_whose_status_changed_refreshes_the_counts(superuser_client):
    job = make_running()
    assert "HX-Trigger" not in superuser_client.get(
        url("job-row", job), {"shown": "running"}, **HTMX
    )
    response = superuser_client.get(url("job-row", job), {"shown": "queued"}, **HTMX)
    assert response["HX-Trigger"] == "aq-job-changed"
    # the list's counts listen for it and reload themselves from the list
    content = superuser_client.get(url("job-list"), {"queue": "default"}).content.decode()
    assert (
        '<div id="job-counts" hx-get="/jobs/?queue=default" '
        'hx-trigger="aq-job-changed from:body delay:300ms" hx-select="#job-counts"'
    ) in content


def test_live_panel_polls_then_ends_with_the_result_timeline_and_errors(superuser_client):
    job = make_running(current=1, total=4)
    response = superuser_client.get(url("job-live", job), **HTMX)
    assert response.status_code == 200
    assert f'hx-get="/jobs/{job.pk}/live/" hx-trigger="every 1s"' in response.content.decode()
    assert b"hx-swap-oob" not in response.content

    Job.objects.filter(pk=job.pk).update(
        status=Status.SUCCEEDED, finished_at=timezone.now(), result={"answer": 42}
    )
    response = superuser_client.get(url("job-live", job), **HTMX)
    assert response.status_code == 286
    content = response.content.decode()
    assert "hx-trigger" not in content
    assert '<section id="job-result" class="aq-panel" hx-swap-oob="true">' in content
    assert "&quot;answer&quot;: 42" in content
    assert '<section id="job-timeline" class="aq-panel" hx-swap-oob="true">' in content
    assert '<section id="job-errors" class="aq-panel" hx-swap-oob="true" hidden>' in content


def test_the_detail_page_includes_the_polling_live_panel(superuser_client):
    job = make_running(current=3, total=10)
    content = superuser_client.get(url("job-detail", job)).content.decode()
    assert f'<section id="job-{job.pk}-live"' in content
    assert f'hx-get="/jobs/{job.pk}/live/" hx-trigger="every 1s"' in content
    assert 'hx-headers=\'{"X-CSRFToken": "' in content


@pytest.mark.django_db(transaction=True)  # fresh ids: no live progress of an older job
def test_progress_bar_shows_percent_message_elapsed_and_eta(superuser_client):
    job = make_running(current=30, total=120, message="copying <files>", seconds=60)
    for response in (
        superuser_client.get(url("job-list")),
        superuser_client.get(url("job-row", job), **HTMX),
        superuser_client.get(url("job-detail", job)),
        superuser_client.get(url("job-live", job), **HTMX),
    ):
        content = response.content.decode()
        assert '<progress max="100" value="25.0">' in content
        assert '<span class="aq-percent">25%</span> 30/120' in content
        assert "copying &lt;files&gt;" in content
        # Up to a second later than the 60 s the job was started before (a busy machine).
        assert re.search(r'<span class="aq-elapsed">elapsed 1m 0[01]s</span>', content)
        # elapsed * (total - current) / current = 60 s * 90 / 30
        assert re.search(r'<span class="aq-eta">ETA 3m 0[0-3]s</span>', content)


@pytest.mark.django_db(transaction=True)
def test_progress_without_a_total_has_no_percent_or_eta(superuser_client):
    job = make_running(current=7, message="counting", seconds=5)
    content = superuser_client.get(url("job-row", job), **HTMX).content.decode()
    assert '<progress max="100">' in content
    assert "aq-percent" not in content
    assert "aq-eta" not in content
    assert " 7</span>" in content
    assert re.search(r'<span class="aq-elapsed">elapsed 5\.[0-9]s</span>', content)


def test_duration_filter():
    assert duration(None) == ""
    assert duration(timedelta(seconds=4.25)) == "4.2s"
    assert duration(timedelta(seconds=-3)) == "0.0s"
    assert duration(37) == "37s"
    assert duration(timedelta(minutes=3, seconds=5)) == "3m 05s"
    assert duration(timedelta(hours=2, minutes=7, seconds=40)) == "2h 07m"


# -- the job page ------------------------------------------------------------------------


def test_detail_shows_arguments_meta_result_and_facts(superuser_client):
    job = make_succeeded(
        args=[1, "two"], kwargs={"flag": True}, meta={"source": "import"}, queue="mail"
    )
    content = superuser_client.get(url("job-detail", job)).content.decode()
    assert "[\n  1,\n  &quot;two&quot;\n]" in content
    assert "&quot;flag&quot;: true" in content
    assert "&quot;source&quot;: &quot;import&quot;" in content
    assert '<section id="job-result" class="aq-panel">' in content
    assert "&quot;ok&quot;: true" in content
    assert "<dt>Queue</dt><dd>mail</dd>" in content


def test_timeline_and_every_failed_attempt_with_its_traceback(superuser_client):
    job = make_failed("went <b>wrong</b>", attempts=2)
    content = superuser_client.get(url("job-detail", job)).content.decode()
    assert re.findall(r"<strong>([^<]+)</strong>", content) == [
        "Scheduled",
        "Attempt 1 failed",
        "Attempt 2 started",
        "Attempt 2 failed",
        "Failed",
    ]
    assert content.count('<pre class="aq-traceback">Traceback (most recent call last):') == 2
    assert "RuntimeError: went &lt;b&gt;wrong&lt;/b&gt;</pre>" in content
    assert "<b>wrong</b>" not in content


@pytest.mark.django_db(transaction=True)
def test_timeline_of_a_real_failed_job(superuser_client):
    job = schedule(tasks.fail, ["kaboom"], max_attempts=1)
    job.execute()
    content = superuser_client.get(url("job-detail", job)).content.decode()
    assert re.findall(r"<strong>([^<]+)</strong>", content) == [
        "Scheduled",
        "Attempt 1 started",
        "Attempt 1 failed",
        "Failed",
    ]
    assert "RuntimeError: kaboom" in content
    assert "raise RuntimeError(message)" in content


def test_locks_link_to_their_objects_with_one_query_per_model(
    superuser_client, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(
        Counter, "get_absolute_url", lambda self: f"/counters/{self.pk}/", raising=False
    )
    counter = Counter.objects.create(name="<i>c</i>")
    other = Counter.objects.create(name="d")
    record = Record.objects.create(label="r")
    job = make_job()
    keys = [
        f"testapp.counter:{counter.pk}",
        f"testapp.counter:{other.pk}",
        "testapp.counter:999999",
        "testapp.counter:abc",
        "testapp.counter:*",
        f"testapp.record:{record.pk}",
        "nope.model:1",
        "price-feed <x>",
    ]
    JobLock.objects.bulk_create(JobLock(job=job, key=key) for key in keys)
    superuser_client.get(url("job-detail", job))  # warm the session and permissions
    # session, user, job, locks, counters, records, errors
    with django_assert_num_queries(7):
        content = superuser_client.get(url("job-detail", job)).content.decode()
    assert (
        f'<a href="/counters/{counter.pk}/">&lt;i&gt;c&lt;/i&gt;=0</a> '
        f"<code>testapp.counter:{counter.pk}</code>"
    ) in content
    assert f'<a href="/counters/{other.pk}/">d=0</a>' in content
    assert "<li><code>testapp.counter:999999</code></li>" in content
    assert "<li><code>testapp.counter:abc</code></li>" in content
    assert "<li>all counters <code>testapp.counter:*</code></li>" in content
    assert f"<li>r <code>testapp.record:{record.pk}</code></li>" in content
    assert "<li><code>nope.model:1</code></li>" in content
    assert "<li><code>price-feed &lt;x&gt;</code></li>" in content


def test_lock_urls_that_could_run_script_are_not_linked(superuser_client, monkeypatch):
    monkeypatch.setattr(
        Counter, "get_absolute_url", lambda self: "javascript:alert(1)", raising=False
    )
    counter = Counter.objects.create(name="c")
    job = make_job()
    JobLock.objects.create(job=job, key=f"testapp.counter:{counter.pk}")
    content = superuser_client.get(url("job-detail", job)).content.decode()
    assert "javascript:" not in content
    assert f"<li>c=0 <code>testapp.counter:{counter.pk}</code></li>" in content


# -- actions -----------------------------------------------------------------------------


def test_no_buttons_and_403_without_the_permissions(client):
    owner = make_user("owner")
    failed, queued, done = make_failed(user=owner), make_job(user=owner), make_succeeded(user=owner)
    login(client, owner)
    for page in (client.get(url("job-list")), client.get(url("job-detail", failed))):
        assert b"aq-buttons" not in page.content
        assert b"/retry/" not in page.content
    assert client.post(url("job-retry", failed)).status_code == 403
    assert client.post(url("job-cancel", queued)).status_code == 403
    assert client.post(url("job-delete", done)).status_code == 403
    assert Job.objects.get(pk=failed.pk).status == Status.FAILED
    assert Job.objects.get(pk=queued.pk).status == Status.QUEUED
    assert Job.objects.filter(pk=done.pk).exists()


def test_buttons_follow_permissions_and_state(client):
    owner = make_user("owner", "change_job")
    failed, queued = make_failed(user=owner), make_job(user=owner)
    running, done = make_running(user=owner), make_succeeded(user=owner)
    login(client, owner)
    content = client.get(url("job-list")).content.decode()
    rows = {
        int(pk): body for pk, body in re.findall(r'<tr id="job-(\d+)"(.*?)</tr>', content, re.S)
    }
    assert "/retry/" in rows[failed.pk]
    assert "/cancel/" not in rows[failed.pk]
    assert "/cancel/" in rows[queued.pk]
    assert "/retry/" not in rows[queued.pk]
    assert "/cancel/" in rows[running.pk]
    assert "aq-buttons" not in rows[done.pk]  # delete needs delete_job
    assert "/delete/" not in content
    owner.user_permissions.add(Permission.objects.get(codename="delete_job"))
    login(client, User.objects.get(pk=owner.pk))
    content = client.get(url("job-detail", done)).content.decode()
    assert f'action="/jobs/{done.pk}/delete/"' in content
    assert "/delete/" in client.get(url("job-detail", failed)).content.decode()
    assert "/delete/" not in client.get(url("job-detail", queued)).content.decode()


@pytest.mark.parametrize("name", ACTIONS)
def test_actions_refuse_get(superuser_client, name):
    job = make_failed()
    assert superuser_client.get(url(name, job)).status_code == 405
    assert Job.objects.get(pk=job.pk).status == Status.FAILED


@pytest.mark.parametrize("name", ACTIONS)
def test_actions_need_the_csrf_token(name):
    client = Client(enforce_csrf_checks=True)
    login(client, make_user("root", superuser=True))
    job = make_failed()
    assert client.post(url(name, job)).status_code == 403
    assert Job.objects.get(pk=job.pk).status == Status.FAILED
    client.get(url("job-list"))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    assert client.post(url(name, job), HTTP_X_CSRFTOKEN=token).status_code in (302, 200)


def test_retry_a_failed_job(superuser_client):
    job = make_failed()
    response = superuser_client.post(url("job-retry", job), {"next": "/jobs/?status=failed"})
    assert response.status_code == 302
    assert response["Location"] == "/jobs/?status=failed"
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    page = superuser_client.get(response["Location"])
    assert f"Job {job.pk} was queued again.".encode() in page.content


def test_cancel_a_queued_job(superuser_client):
    job = make_job()
    response = superuser_client.post(url("job-cancel", job), follow=True)
    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert f"Job {job.pk} was cancelled.".encode() in response.content
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED


def test_cancel_a_running_job_requests_it(superuser_client):
    # A worker name of its own: the flag (on SQLite in a side file that outlives the
    # test database) belongs to this claim only.
    job = make_running(current=1, total=10, worker=f"test:{uuid.uuid4()}")
    response = superuser_client.post(url("job-cancel", job), follow=True)
    assert b"was requested: it stops at its next progress report." in response.content
    job.refresh_from_db()
    assert job.status == Status.RUNNING
    row = superuser_client.get(url("job-row", job), **HTMX).content.decode()
    assert "cancel requested" in row


def test_delete_a_finished_job(superuser_client):
    job = make_failed()
    response = superuser_client.post(
        url("job-delete", job), {"next": f"/jobs/{job.pk}/"}, follow=True
    )
    assert response.redirect_chain == [("/jobs/", 302)]
    assert f"Job {job.pk} was deleted.".encode() in response.content
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not JobError.objects.filter(job_id=job.pk).exists()


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("job-retry", make_succeeded, "cannot be retried: it is succeeded"),
        ("job-retry", make_job, "cannot be retried: it is queued"),
        ("job-cancel", make_failed, "cannot be cancelled: it is failed"),
        ("job-delete", make_job, "cannot be deleted: it is queued"),
        ("job-delete", make_running, "cannot be deleted: it is running"),
    ],
)
def test_an_action_in_the_wrong_state_is_a_message(superuser_client, name, make, expected):
    job = make()
    status = job.status
    response = superuser_client.post(url(name, job), follow=True)
    assert response.status_code == 200
    assert f"Job {job.pk} {expected}.".encode() in response.content
    assert b"aq-message aq-error" in response.content
    assert Job.objects.get(pk=job.pk).status == status
    fragment = superuser_client.post(url(name, job), HTTP_HX_TARGET=f"job-{job.pk}", **HTMX)
    assert fragment.status_code == 200
    assert f'<p class="aq-notice aq-error" role="status">Job {job.pk} {expected}.' in (
        fragment.content.decode()
    )


def test_next_must_stay_on_this_site(superuser_client):
    job = make_failed()
    for evil in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        Job.objects.filter(pk=job.pk).update(status=Status.FAILED)
        response = superuser_client.post(url("job-retry", job), {"next": evil})
        assert response["Location"] == f"/jobs/{job.pk}/"


def test_htmx_actions_answer_with_the_targeted_fragment(superuser_client):
    failed, queued = make_failed(), make_job()
    row = superuser_client.post(
        url("job-retry", failed),
        HTTP_HX_TARGET=f"job-{failed.pk}",
        HTTP_HX_CURRENT_URL="http://testserver/jobs/?status=failed",
        **HTMX,
    )
    content = row.content.decode()
    assert row.status_code == 200
    assert content.startswith(f'<tr id="job-{failed.pk}"')
    assert f"Job {failed.pk} was queued again." in content
    assert 'hx-trigger="every 3s"' in content  # queued again: the row polls again
    assert 'name="next" value="/jobs/?status=failed"' in content
    assert row["HX-Trigger"] == "aq-job-changed"  # the list's counts refresh
    live = superuser_client.post(
        url("job-cancel", queued), HTTP_HX_TARGET=f"job-{queued.pk}-live", **HTMX
    )
    content = live.content.decode()
    assert content.startswith(f'<section id="job-{queued.pk}-live"')
    assert f"Job {queued.pk} was cancelled." in content
    # the messages were shown in the fragment, not left for the next page
    assert b"was queued again" not in superuser_client.get(url("job-list")).content


def test_htmx_delete_removes_the_row_or_leaves_the_job_page(superuser_client):
    first, second = make_succeeded(), make_failed()
    response = superuser_client.post(
        url("job-delete", first), HTTP_HX_TARGET=f"job-{first.pk}", **HTMX
    )
    assert response.status_code == 200
    assert response.content == b""
    assert response["HX-Trigger"] == "aq-job-changed"
    response = superuser_client.post(
        url("job-delete", second), HTTP_HX_TARGET=f"job-{second.pk}-live", **HTMX
    )
    assert response["HX-Redirect"] == "/jobs/"
    assert not Job.objects.filter(pk__in=[first.pk, second.pk]).exists()


def test_owner_with_permission_acts_on_own_job(client):
    owner = make_user("owner", "change_job")
    job = make_failed(user=owner)
    login(client, owner)
    assert client.post(url("job-retry", job)).status_code == 302
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


# -- redaction and escaping --------------------------------------------------------------


def test_redact_nested_secret_keys():
    value = {
        "user": "ann",
        "Password": "x",
        "db_passwd": "x",
        "client_secret": "x",
        "nested": {"API_KEY": "x", "list": [{"auth_token": "x", "ok": 1}], "apikey": "x"},
        "headers": {"Authorization": "x", "Cookie": "x", "X-Session-Id": "x"},
    }
    assert redact(value) == {
        "user": "ann",
        "Password": REDACTED,
        "db_passwd": REDACTED,
        "client_secret": REDACTED,
        "nested": {
            "API_KEY": REDACTED,
            "list": [{"auth_token": REDACTED, "ok": 1}],
            "apikey": REDACTED,
        },
        "headers": {"Authorization": REDACTED, "Cookie": REDACTED, "X-Session-Id": REDACTED},
    }
    assert redact([1, "password"]) == [1, "password"]  # values are not keys


@pytest.mark.django_db(transaction=True)
def test_secrets_are_redacted_and_everything_is_escaped_everywhere(superuser_client):
    job = make_failed(
        SCRIPT,
        args=[{"token": "tok-123"}, SCRIPT],
        kwargs={"password": "hunter2", "options": {"api_key": "key-456"}, "note": SCRIPT},
        meta={"Authorization": "Bearer abc-789", "label": SCRIPT},
        result={"session": "sess-000"},
    )
    running = make_running(
        current=1, total=2, message=SCRIPT, kwargs={"password": "hunter2", "note": SCRIPT}
    )
    responses = [
        superuser_client.get(url("job-list")),
        superuser_client.get(url("job-list"), **HTMX),
        superuser_client.get(url("job-row", job), **HTMX),
        superuser_client.get(url("job-row", running), **HTMX),
        superuser_client.get(url("job-detail", job)),
        superuser_client.get(url("job-detail", running)),
        superuser_client.get(url("job-live", job), **HTMX),
        superuser_client.get(url("job-live", running), **HTMX),
    ]
    for response in responses:
        content = response.content.decode()
        for secret in ("hunter2", "tok-123", "key-456", "abc-789", "sess-000"):
            assert secret not in content
        assert "<script>alert" not in content
        assert ESCAPED_SCRIPT in content
    for response in responses[:-1]:  # the running job's live panel shows no JSON
        assert REDACTED in response.content.decode()
    detail = responses[4].content.decode()
    assert f"&quot;password&quot;: &quot;{REDACTED}&quot;" in detail
    assert f"&quot;api_key&quot;: &quot;{REDACTED}&quot;" in detail
    assert f"&quot;Authorization&quot;: &quot;{REDACTED}&quot;" in detail
    assert f"&quot;session&quot;: &quot;{REDACTED}&quot;" in detail
    assert f"RuntimeError: {ESCAPED_SCRIPT}</pre>" in detail


def test_credentials_in_values_and_errors_are_redacted(superuser_client):
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"
    job = make_failed(
        "could not connect to postgres://app:url-pw-1@db/app",
        kwargs={"db_url": "redis://:url-pw-2@cache/0", "private_key": pem, "author": "Ann"},
        result={"auth": "auth-3", "credentials": {"user": "u", "key": "cred-4"}},
    )
    pages = [superuser_client.get(url("job-list")), superuser_client.get(url("job-detail", job))]
    for response in pages:
        content = response.content.decode()
        for secret in ("url-pw-1", "url-pw-2", "MIIEvQIBADANBg", "auth-3", "cred-4"):
            assert secret not in content
    detail = pages[1].content.decode()
    assert f"redis://:{REDACTED}@cache/0" in detail
    assert "&quot;author&quot;: &quot;Ann&quot;" in detail  # not a secret key
    assert f"postgres://app:{REDACTED}@db/app</pre>" in detail  # the traceback


def test_pages_cut_big_values_and_show_unreadable_ones(superuser_client, settings):
    settings.ASYNC_QUEUE = {"SHOW_MAX_BYTES": 1000}
    job = make_failed("e" * 5000, result={"blob": "x" * 100_000})
    JobError.objects.filter(job=job).update(traceback="t" * 5000)
    Job.objects.filter(pk=job.pk).update(kwargs={"k": "y" * 5000})
    detail = superuser_client.get(url("job-detail", job)).content.decode()
    assert detail.count("more bytes not shown]") == 4  # kwargs, result, message, traceback
    assert "x" * 1001 not in detail
    assert len(detail) < 20_000
    job.args = UnreadableJSON("[unreadable: not valid JSON (Expecting value)]")
    assert call_summary(job) == "echo([unreadable: not valid JSON (Expecting value)])"


def test_lists_and_polls_load_only_the_start_of_big_arguments(superuser_client):
    big = make_job(args=["x" * 70_000], kwargs={"password": "p"})
    small = make_job(args=[1], kwargs={"password": "p"})
    note = "echo([70,004 characters of args: see the job&#x27;s page])"
    for response in (
        superuser_client.get(url("job-list")),
        superuser_client.get(url("job-row", big), **HTMX),
        superuser_client.get(url("job-live", big), **HTMX),
    ):
        assert response.status_code == 200
    assert note in superuser_client.get(url("job-list")).content.decode()
    assert note in superuser_client.get(url("job-row", big), **HTMX).content.decode()
    assert f'echo(1, password="{REDACTED}")' in superuser_client.get(
        url("job-row", small), **HTMX
    ).content.decode().replace("&quot;", '"')
    assert "x" * 1000 in superuser_client.get(url("job-detail", big)).content.decode()


# -- bounded queries ---------------------------------------------------------------------


def make_page_of_jobs(count: int, owner: User | None = None) -> None:
    for index in range(count):
        kind = index % 4
        if kind == 0:
            make_running(current=index, total=100, user=owner)
        elif kind == 1:
            make_failed(user=owner)
        elif kind == 2:
            make_succeeded(user=owner)
        else:
            make_job(user=owner)


@pytest.mark.parametrize("count", [4, 25])
def test_list_query_count_is_pinned(superuser_client, django_assert_num_queries, count):
    make_page_of_jobs(count, owner=make_user("owner"))
    # session, user, counts, page (with users), pauses; live progress: none on PostgreSQL
    # (the row carries it), a side file outside Django on SQLite
    with django_assert_num_queries(5):
        response = superuser_client.get(url("job-list"))
    assert len(row_ids(response)) == count


@pytest.mark.parametrize("count", [4, 25])
def test_list_query_count_for_staff_with_model_permissions(
    client, django_assert_num_queries, count
):
    make_page_of_jobs(count)
    login(client, make_user("staff", "change_job", "delete_job", staff=True))
    # + the user's and their groups' permissions, once per request
    with django_assert_num_queries(7):
        client.get(url("job-list"))


def test_list_query_count_for_an_owner(client, django_assert_num_queries):
    owner = make_user("owner", "change_job")
    make_page_of_jobs(12, owner=owner)
    login(client, owner)
    with django_assert_num_queries(7):
        response = client.get(url("job-list"))
    assert len(row_ids(response)) == 12


def test_row_fragment_query_count(superuser_client, django_assert_num_queries):
    job = make_running(current=1, total=3)
    # session, user, job (with its user)
    with django_assert_num_queries(3):
        superuser_client.get(url("job-row", job), **HTMX)


def test_fragments_work_without_the_htmx_middleware(superuser_client, settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "django_htmx" not in m]
    job = make_succeeded()
    response = superuser_client.get(url("job-row", job), **HTMX)
    assert response.status_code == 286
    assert response.content.decode().startswith(f'<tr id="job-{job.pk}"')
