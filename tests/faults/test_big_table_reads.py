"""Row 27: over a million stored jobs, a metrics scrape, queue_health and every search stay fast.

The table is filled as in row 18 (90% succeeded, 5% failed, 3% cancelled, 2%
queued, 50 names, finished 60 days ago), then given what a live queue has on
top: jobs that finished in the last seconds, running jobs, a rare job name,
and a non-staff user with jobs of their own. Each page's answer is checked
against what was written, then it is timed 5 times after a warm-up (the scrape
and queue_health 9 times). The bounds hold what the work costs, which other
processes on this shared 2-core machine do not change: on SQLite (inside this
process) the least CPU time, on PostgreSQL the fastest wall-clock time; the
wall-clock medians are reported too. The scrape's and queue_health's work grows
with the active jobs (here the 20,000 queued rows of the history), not with
the finished ones.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.db.models import F, QuerySet
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from async_queue import Job, Status
from async_queue.maintenance import COUNT_CAP, health
from tests.conftest import login, make_user
from tests.faults.bigtable import fill_jobs
from tests.faults.conftest import FULL, on_postgres, report, size

RARE = "tests.faultapp.jobs.rare_report"
RECENT = "tests.faultapp.jobs.recent"
# Bounds at full size on this project's 2-core machine; CI-size runs share slower
# machines with other jobs, so they get a looser bound.
SCRAPE_BOUND = 0.1 if FULL else 0.5
PAGE_BOUND = 0.2 if FULL else 0.5


def cost_seconds(call: Callable[[], object], samples: int = 9) -> dict[str, float]:
    """Wall-clock and CPU seconds of ``call`` after a warm-up: the fastest and the median."""
    call()  # warm the caches, as the next scrape or visit would find them
    wall, cpu = [], []
    for _ in range(samples):
        started, cpu_started = time.monotonic(), time.process_time()
        call()
        wall.append(time.monotonic() - started)
        cpu.append(time.process_time() - cpu_started)
    return {
        "min": round(min(wall), 4),
        "median": round(statistics.median(wall), 4),
        "cpu_min": round(min(cpu), 4),
    }


def cost(timing: dict[str, float]) -> float:
    """What the work costs, unaffected by the other processes of a shared machine.

    SQLite runs inside this process, so its CPU time is the whole work; the
    PostgreSQL server's share is only in the wall-clock time, of which the
    fastest sample is the least disturbed.
    """
    return timing["min"] if on_postgres() else timing["cpu_min"]


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def row_count(response) -> int:
    return response.content.decode().count('<tr id="job-')


def add_live_jobs(history: QuerySet, recent: int, owner: User) -> None:
    """What a busy queue has besides its history: recent, running, rare and own jobs."""
    now = timezone.now()
    Job.objects.bulk_create(
        [
            Job(
                name=RECENT,
                status=Status.SUCCEEDED if index % 10 else Status.FAILED,
                started_at=now - timedelta(seconds=3),
                finished_at=now - timedelta(seconds=1.5),
                attempts=1,
            )
            for index in range(recent)
        ],
        batch_size=500,
    )
    Job.objects.bulk_create(
        [Job(name=RECENT, status=Status.RUNNING, started_at=now, attempts=1) for _ in range(8)]
    )
    for index, status in enumerate(
        [Status.SUCCEEDED, Status.FAILED, Status.QUEUED, Status.SUCCEEDED, Status.CANCELLED]
    ):
        Job.objects.create(name=RARE, status=status, user=owner if index < 2 else None)
    # The owner's other jobs: 50 rows of the history, of every status and name.
    history.annotate(m=F("pk") % (history.count() // 50)).filter(m=7).update(user=owner)


@pytest.mark.django_db(transaction=True)
def test_scrapes_and_searches_over_a_million_rows():
    rows = size(100_000, 1_000_000)
    recent = size(500, 2_000)
    fill_jobs(rows)
    # Ids continue from earlier tests on PostgreSQL (sequences are not reset).
    first = Job.objects.order_by("pk").values_list("pk", flat=True)[0]
    middle = first + rows // 2
    staff = make_user("root", superuser=True)
    owner = make_user("owner")
    add_live_jobs(Job.objects.filter(pk__lt=first + rows), recent, owner)
    staff_client, own_client = login(Client(), staff), login(Client(), owner)
    owned = Job.objects.filter(user=owner).count()
    queued = Job.objects.queued().count()

    # -- the metrics scrape and queue_health ------------------------------------------
    scrape = cost_seconds(lambda: staff_client.get("/jobs/metrics/"))
    seen = metric_samples(staff_client.get("/jobs/metrics/").content.decode())
    by_status = {"queued": 0, "running": 0}
    for (name, labels), value in seen.items():
        if name == "async_queue_jobs":
            by_status[dict(labels)["status"]] += value
    assert by_status == {"queued": queued, "running": 8}
    assert seen[("async_queue_due_jobs", ())] == queued
    assert seen[("async_queue_oldest_due_job_age_seconds", ())] > 59 * 86400
    succeeded = (("name", RECENT), ("status", "succeeded"))
    assert seen[("async_queue_recently_finished_jobs", succeeded)] == recent - recent // 10
    failed = (("name", RECENT), ("status", "failed"))
    assert seen[("async_queue_recently_finished_jobs", failed)] == recent // 10
    durations = (("name", RECENT),)
    assert seen[("async_queue_recent_job_duration_seconds_count", durations)] == recent
    assert seen[("async_queue_recent_job_duration_seconds_sum", durations)] == pytest.approx(
        recent * 1.5, rel=0.01
    )
    oldest = seen[("async_queue_oldest_finished_job_age_seconds", (("status", "succeeded"),))]
    assert oldest > 59 * 86400
    # None of the history's 50 names finished in the window.
    assert not any(
        dict(labels).get("name", "").startswith("tests.faultapp.jobs.ledger")
        for name, labels in seen
    )

    health_seconds = cost_seconds(health)
    state = health()
    assert state["counts"]["queued"] == queued  # active: exact
    assert state["counts"]["running"] == 8
    assert state["counts"]["succeeded"] == COUNT_CAP + 1  # "more than the cap"
    assert state["due"] == queued
    assert state["by_queue"]["q3"] == {"queued": Job.objects.queued().filter(queue="q3").count()}

    # -- dashboard searches, with and without a status, for staff and a non-staff user --
    searches = {
        "nothing": ("q=zzz-no-such-job", 0, 0),
        "little": (f"q={RARE.rpartition('.')[2]}", 5, 2),
        "a lot": ("q=ledger", 25, 25),
        "one name": ("q=ledger_7", 25, None),
        "id or name": (f"q={middle}", None, None),
        "#id": (f"q=%23{middle}", 1, None),
        "nothing, failed": ("q=zzz-no-such-job&status=failed", 0, 0),
        "little, failed": (f"q={RARE.rpartition('.')[2]}&status=failed", 1, 1),
        "a lot, failed": ("q=ledger&status=failed", 25, None),
        "a lot, running": ("q=ledger&status=running", 0, 0),
        "a lot, queued": ("q=ledger&status=queued", 25, None),
        "running": ("status=running", 8, 0),
        "failed": ("status=failed", 25, None),
        "rare name": (f"name={RARE}", 5, 2),
        "user": ("user=owner", 25, None),
        "user, queued": ("user=owner&status=queued", None, None),
    }
    timings: dict[str, dict[str, dict[str, float]]] = {"staff": {}, "own": {}}
    for label, (query, staff_rows, own_rows) in searches.items():
        for who, client, expected in (
            ("staff", staff_client, staff_rows),
            ("own", own_client, own_rows),
        ):
            page = client.get(f"/jobs/?{query}")
            assert page.status_code == 200, (label, who)
            if expected is not None:
                assert row_count(page) == expected, (label, who, row_count(page))
            timings[who][label] = cost_seconds(
                lambda c=client, q=query: c.get(f"/jobs/?{q}"), samples=5
            )
    fragment = cost_seconds(
        lambda: staff_client.get("/jobs/?" + urlencode({"q": "zzz"}), headers={"HX-Request": "1"}),
        samples=5,
    )
    timings["staff"]["nothing, fragment"] = fragment
    pages = [(f"{who} {label}", t) for who, by in timings.items() for label, t in by.items()]
    report(
        27,
        "metrics scrape, queue_health and searches over many rows",
        rows=rows,
        recent_window_jobs=recent,
        queued=queued,
        owned=owned,
        scrape_s=scrape,
        health_s=health_seconds,
        pages=len(pages),
        slowest_page=max(pages, key=lambda page: cost(page[1])),
        slowest_page_median=max(pages, key=lambda page: page[1]["median"]),
        cost_seconds={
            who: {label: cost(t) for label, t in by.items()} for who, by in timings.items()
        },
    )
    assert cost(scrape) < SCRAPE_BOUND, scrape
    assert cost(health_seconds) < SCRAPE_BOUND, health_seconds
    slow = {name: timing for name, timing in pages if cost(timing) >= PAGE_BOUND}
    assert not slow, slow
