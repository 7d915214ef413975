"""Row 18: hostile filter parameters, a million job rows, and a retention purge."""

import re
import statistics
import time
from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from async_queue import Job, JobError, Status
from async_queue.maintenance import purge_finished
from tests.conftest import login, make_user
from tests.faults.bigtable import fill_jobs
from tests.faults.conftest import report, size

# The columns the list may filter or order on, and the tables it may read.
ALLOWED_COLUMNS = {
    "async_queue_job": {"id", "status", "queue", "name", "user_id"},
    "auth_user": {"id", "username"},
    "django_session": {"session_key", "expire_date"},
}
KNOWN = ["q", "status", "queue", "name", "user", "before", "after"]
HOSTILE = [
    "order", "ordering", "o", "sort", "page", "user__password", "user__password__startswith",
    "status__in", "pk__gt", "name__regex", "id", "limit", "offset", "format", "__class__",
]  # fmt: skip
VALUES = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "' OR 1=1 --",
            "\x00",
            "%",
            "_",
            "\\",
            "#",
            "#-1",
            "#99999999999999999999",
            "-1",
            "0",
            "9223372036854775808",
            "1e309",
            "NaN",
            "running",
            "RUNNING",
            "password",
            "-id",
            "?",
            "<script>",
            "\u202e",
            "a" * 10_000,
        ]
    ),
    st.integers().map(str),
)


def referenced_columns(sql: str) -> set[tuple[str, str]]:
    """``(table, column)`` pairs a statement filters or orders on (after WHERE)."""
    tail = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else ""
    pairs = set(re.findall(r'"(\w+)"\."(\w+)"', tail))
    aliases = dict(re.findall(r'"(\w+)" "(\w+)"', sql))  # "auth_user" "U0"
    return {(next((t for t, a in aliases.items() if a == table), table), c) for table, c in pairs}


def assert_on_the_allowlist(statements: Iterable[str]) -> None:
    for sql in statements:
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        for table, column in referenced_columns(sql):
            assert column in ALLOWED_COLUMNS.get(table, ()), (table, column, sql)


@pytest.mark.django_db
@settings(
    max_examples=size(60, 600),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    params=st.dictionaries(st.sampled_from(KNOWN + HOSTILE), VALUES, max_size=6),
    fragment=st.booleans(),
)
def test_fuzzed_filters_never_fail_and_stay_on_the_allowlist(superuser_client, params, fragment):
    """Whatever the parameters, the list answers 200 and filters only allowed columns."""
    headers = {"HX-Request": "true"} if fragment else {}
    with CaptureQueriesContext(connection) as queries:
        response = superuser_client.get(f"/jobs/?{urlencode(params)}", headers=headers)
    assert response.status_code == 200
    assert_on_the_allowlist(query["sql"] for query in queries.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_the_list_answers_fast_over_a_million_rows(superuser_client):
    """Every page of the list stays under 0.5 s, and nothing counts the whole table."""
    rows = size(100_000, 1_000_000)
    started = time.monotonic()
    fill_jobs(rows)
    fill_seconds = time.monotonic() - started
    owner = make_user("owner")
    Job.objects.filter(pk__in=[1, 2, 3, rows // 2]).update(user=owner)
    own_client = login(Client(), owner)
    pages = {
        "all": "",
        "failed": "status=failed",
        "queued": "status=queued",
        "name": "name=tests.faultapp.jobs.ledger_7",
        "queue": "queue=q3",
        "id": f"q=%23{rows // 2}",
        "deep page": f"before={rows // 2}",
        "user": "user=owner",
    }
    timings = {}
    for label, query in [*pages.items(), ("own jobs", "")]:
        client = own_client if label == "own jobs" else superuser_client
        client.get(f"/jobs/?{query}")  # warm the caches, as a second visit would
        samples = []
        for _ in range(3):
            with CaptureQueriesContext(connection) as queries:
                begin = time.monotonic()
                response = client.get(f"/jobs/?{query}")
                samples.append(time.monotonic() - begin)
            assert response.status_code == 200
            for captured in queries.captured_queries:
                if "COUNT(" in captured["sql"].upper():
                    assert captured["sql"].upper().count("LIMIT") >= len(Status), captured
        timings[label] = round(statistics.median(samples), 3)
    assert b"10000+" in superuser_client.get("/jobs/").content
    slow = {label: seconds for label, seconds in timings.items() if seconds >= 0.5}
    assert not slow, slow
    report(18, "dashboard list over many rows", rows=rows, fill_s=round(fill_seconds, 1),
           median_seconds=timings)  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_retention_purge_keeps_finished_rows_bounded():
    """The periodic retention job deletes old finished rows (and their errors) only."""
    rows = size(100_000, 1_000_000)
    fill_jobs(rows, finished_days_ago=60)
    old_failed = Job.objects.filter(status=Status.FAILED).order_by("pk").first()
    JobError.objects.create(job=old_failed, attempt=1, exception="builtins.E", message="m")
    recent = Job.objects.create(name="tests.faultapp.jobs.ledger", status=Status.SUCCEEDED)
    Job.objects.filter(pk=recent.pk).update(finished_at=recent.created_at)
    queued = Job.objects.filter(status=Status.QUEUED).count()
    started = time.monotonic()
    deleted = purge_finished(days=30, include_failed=True)
    seconds = time.monotonic() - started
    assert deleted == rows - queued
    assert set(Job.objects.values_list("status", flat=True)) == {Status.QUEUED, Status.SUCCEEDED}
    assert Job.objects.finished().count() == 1  # the recent one is kept
    assert not JobError.objects.exists()
    assert Job.objects.queued().count() == queued
    cutoff = Job.objects.filter(pk=recent.pk).values_list("finished_at", flat=True).get()
    assert not Job.objects.finished().filter(finished_at__lt=cutoff - timedelta(days=30)).exists()
    with pytest.raises(ValueError, match="days must be a non-negative number"):
        purge_finished(days=-1)
    report(18, "retention purge", rows=rows, deleted=deleted, seconds=round(seconds, 1))


def test_the_allowlist_check_catches_a_forbidden_column():
    sql = 'SELECT "U0"."id" FROM "auth_user" "U0" WHERE "U0"."password" LIKE \'a%\''
    assert referenced_columns(sql) == {("auth_user", "password")}
    queries = CaptureQueriesContext(connection)
    queries.initial_queries, queries.final_queries = 0, 1
    queries.connection.queries_log.append({"sql": sql, "time": "0"})
    with pytest.raises(AssertionError):
        assert_on_the_allowlist(query["sql"] for query in queries.captured_queries)
