"""Operator views of the queue: the health report and the retention purge."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from .callables import job
from .metrics import active_counts
from .models import FINISHED, Job, JobError, Status, Worker
from .sql import database_now, dialect
from .unique import prune_windows

THROUGHPUT_WINDOW = timedelta(minutes=10)
PURGE_BATCH = 2000
COUNT_CAP = 10_000  # finished jobs of a status are counted up to this many (and one more)


def _counts(rows: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    grouped: dict[str, dict[str, int]] = {}
    for key, status, n in rows:
        by_status = grouped.setdefault(key, {})
        by_status[status] = by_status.get(status, 0) + n
    return grouped


def health(using: str = "default") -> dict[str, Any]:
    """Counts, backlog age, recent failures and an estimate of the time to drain.

    Like the metrics, it reads the active jobs and recent history through indexes,
    never the whole table: queued and running jobs are counted exactly (also by
    queue and name), each finished status only up to ``COUNT_CAP``.
    """
    now = database_now(using)
    jobs = Job.objects.using(using).order_by()
    active = active_counts(jobs, "queue", "name")
    counts = dict.fromkeys(Status.values, 0) | jobs.count_by_status(COUNT_CAP, FINISHED)
    for _, _, status, n, _, _ in active:
        counts[status] += n
    due_count = sum(due for *_, due, _ in active)
    oldest = min((oldest for *_, oldest in active if oldest is not None), default=None)
    finished_recently = jobs.filter(
        status__in=[Status.SUCCEEDED, Status.FAILED], finished_at__gte=now - THROUGHPUT_WINDOW
    ).count()
    per_second = finished_recently / THROUGHPUT_WINDOW.total_seconds()
    hour_ago = now - timedelta(hours=1)
    return {
        "database_time": now.isoformat(),
        "counts": counts,
        "count_cap": COUNT_CAP,
        "due": due_count,
        "by_queue": _counts((queue, s, n) for queue, _, s, n, _, _ in active),
        "by_name": _counts((name, s, n) for _, name, s, n, _, _ in active),
        "oldest_due_age_seconds": (
            None if oldest is None else round(max((now - oldest).total_seconds(), 0.0), 3)
        ),
        "failed_last_hour": jobs.failed().filter(finished_at__gte=hour_ago).count(),
        "errors_last_hour": JobError.objects.using(using).filter(created_at__gte=hour_ago).count(),
        "throughput_per_minute": round(per_second * 60, 3),
        "estimated_drain_seconds": (
            round(due_count / per_second, 1) if per_second else (0.0 if not due_count else None)
        ),
    }


def purge(older_than: timedelta, *, include_failed: bool = False, using: str = "default") -> int:
    """Delete finished jobs (and their errors) that finished more than ``older_than`` ago.

    Worker rows of workers that stopped or were found dead that long ago go too, and
    every closed ``unique_for`` window (``unique.prune_windows()``) and the counts of
    ended rate windows, however recently closed.
    """
    statuses = [Status.SUCCEEDED, Status.CANCELLED] + ([Status.FAILED] if include_failed else [])
    cutoff = database_now(using) - older_than
    old = Job.objects.using(using).filter(status__in=statuses, finished_at__lt=cutoff)
    deleted = 0
    while ids := list(old.order_by().values_list("id", flat=True)[:PURGE_BATCH]):
        JobError.objects.using(using).filter(job_id__in=ids).delete()
        batch = Job.objects.using(using).filter(id__in=ids).only("id")  # no payloads fetched
        deleted += batch.delete()[1].get("async_queue.Job", 0)
    workers = Worker.objects.using(using)
    workers.filter(stopped_at__lt=cutoff).delete()
    workers.filter(lost_at__lt=cutoff).delete()
    prune_windows(using, PURGE_BATCH)
    dialect(using).prune_rate_counts(PURGE_BATCH)
    return deleted


@job
def purge_finished(days: float, include_failed: bool = False) -> int:
    """``purge()`` as a job function, for a periodic retention job in ``PERIODIC``.

    ``{"name": "retention", "function": "async_queue.maintenance.purge_finished",
    "cron": "17 3 * * *", "kwargs": {"days": 14}}`` keeps two weeks of finished jobs.
    """
    if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
        raise ValueError(f"days must be a non-negative number; got {days!r}.")
    return purge(timedelta(days=days), include_failed=include_failed)
