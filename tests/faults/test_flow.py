"""Rows 34 and 35: flow control across real workers.

Row 34: concurrency limits per key and per queue hold exactly: the most bodies of
one key (or queue) that ever ran at once, from enter/leave times the jobs log
(system-wide monotonic clock), is the limit and never one more.

Row 35: a rate of 20 starts per second, 4 workers: no window of the database
clock holds more than 20 starts, and the complete windows hold (nearly) 20 each.
"""

from __future__ import annotations

import collections
import json
import signal
import time

import pytest
from django.db import connection

from async_queue import Job, schedule_many
from async_queue.models import RateCount
from tests.conftest import wait_for
from tests.faults.conftest import Ledger, on_postgres, report, size

pytestmark = pytest.mark.django_db(transaction=True)
FOREVER = ("--forever", "--sleep", "0.05", "-v", "0")
RATE = 20


def most_at_once(ledger: Ledger) -> dict[str, int]:
    """Per key, the most bodies that ran at the same time (a sweep over enter/leave)."""
    events: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for line in ledger.lines("enter"):
        events[line[4]].append((int(line[3]), 1))
    for line in ledger.lines("leave"):
        events[line[4]].append((int(line[3]), -1))
    most = {}
    for key, changes in events.items():
        running = peak = 0
        for _, change in sorted(changes):  # a leave sorts before an enter at the same ns
            running += change
            peak = max(peak, running)
        most[key] = peak
    return most


def drain(start_worker, ledger: Ledger, calls: list[dict], workers: int, env=None) -> float:
    ids = [job.pk for job in schedule_many(calls, on_commit=False)]
    started = time.monotonic()
    processes = [start_worker(*FOREVER, env={**ledger.env, **(env or {})}) for _ in range(workers)]
    wait_for(lambda: ledger.done(ids), timeout=size(240, 900))
    elapsed = time.monotonic() - started
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.wait() == 0, process.stderr
    assert not Job.objects.filter(pk__in=ids, attempts__gt=1).exists()  # no attempt was used up
    return elapsed


def test_a_per_key_limit_is_never_exceeded(start_worker, ledger):
    """Row 34: 10 keys with a limit of 3, 4 workers; the jobs of a key come in a block, so
    that the workers would all take the same key if nothing stopped them."""
    per_key, keys, workers, limit = size(40, 200), 10, 4, 3
    calls = [
        {"function": "tests.faultapp.flow_jobs.per_tenant", "kwargs": {"tenant": key}}
        for key in range(keys)
        for _ in range(per_key)
    ]
    elapsed = drain(start_worker, ledger, calls, workers)
    most = most_at_once(ledger)
    assert len(most) == keys
    # PostgreSQL runs workers in parallel: the limit is reached and held. SQLite runs one
    # job at a time, so every limit of 1 or more holds by construction.
    expected = limit if on_postgres() else 1
    assert max(most.values()) == expected, most
    report(
        34,
        "concurrency limit per key",
        jobs=len(calls),
        keys=keys,
        limit=limit,
        workers=workers,
        most_at_once=max(most.values()),
        seconds=round(elapsed, 1),
    )


def test_a_queue_limit_is_never_exceeded(start_worker, ledger):
    """Row 34: a queue limited to N, run by N + 1 workers."""
    limit = size(2, 5)
    jobs, workers = size(200, 1000), limit + 1
    calls = [{"function": "tests.faultapp.flow_jobs.in_limited_queue"} for _ in range(jobs)]
    env = {"ASYNC_QUEUE_TEST_SETTINGS": json.dumps({"QUEUES": {"limited": {"concurrency": limit}}})}
    elapsed = drain(start_worker, ledger, calls, workers, env)
    most = most_at_once(ledger)["queue:limited"]
    assert most == (limit if on_postgres() else 1)
    report(
        34,
        "concurrency limit per queue",
        jobs=jobs,
        limit=limit,
        workers=workers,
        most_at_once=most,
        seconds=round(elapsed, 1),
    )


def starts_per_window(ids: list[int]) -> dict[int, int]:
    """Jobs that ran, per one-second window of their start on the database clock (a job
    that lost a window's last start to another worker waits queued, and is not counted)."""
    if on_postgres():
        window = "CAST(FLOOR(EXTRACT(EPOCH FROM started_at)) AS BIGINT)"
    else:
        window = "CAST((JULIANDAY(started_at) - 2440587.5) * 86400.0 AS BIGINT)"
    table = connection.ops.quote_name(Job._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {window}, COUNT(*) FROM {table} WHERE status = 'succeeded' "
            f"AND id IN ({', '.join(map(str, ids))}) GROUP BY 1"
        )
        return dict(cursor.fetchall())


def test_a_rate_is_never_exceeded_and_is_nearly_reached(start_worker, ledger):
    """Row 35: more jobs than the rate lets through in the time, 4 workers."""
    seconds, workers = size(6, 30), 4
    calls = [{"function": "tests.faultapp.flow_jobs.rated"} for _ in range(RATE * seconds + 60)]
    ids = [job.pk for job in schedule_many(calls, on_commit=False)]
    processes = [start_worker(*FOREVER, env=ledger.env) for _ in range(workers)]
    wait_for(lambda: Job.objects.filter(pk__in=ids, started_at__isnull=False).exists())
    time.sleep(seconds)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.wait() == 0, process.stderr
    counts = starts_per_window(ids)
    assert max(counts.values()) <= RATE, counts
    assert max(RateCount.objects.values_list("starts", flat=True)) <= RATE
    # The windows between the first and the last were complete: each could hold 20.
    first, last = min(counts), max(counts)
    middle = [counts.get(window, 0) for window in range(first + 1, last)]
    assert len(middle) >= seconds - 3
    reached = sum(middle) / (RATE * len(middle))
    assert reached >= 0.95, counts
    report(
        35,
        "rate limit",
        rate_per_s=RATE,
        workers=workers,
        seconds=seconds,
        most_in_a_window=max(counts.values()),
        complete_windows=len(middle),
        reached=round(reached, 3),
    )
