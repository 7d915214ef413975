"""Operator views of the queue: the health report and the retention purge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Min

from .callables import job
from .db import database_now
from .models import Job, JobError, Status

THROUGHPUT_WINDOW = timedelta(minutes=10)
PURGE_BATCH = 2000


def _counts(rows: Any, key: str) -> dict[str, dict[str, int]]:
    grouped: dict[str, dict[str, int]] = {}
    for row in rows:
        grouped.setdefault(row[key], {})[row["status"]] = row["n"]
    return grouped


def health(using: str = "default") -> dict[str, Any]:
    """Counts, backlog age, recent failures and an estimate of the time to drain."""
    now = database_now(using)
    jobs = Job.objects.using(using)
    by_status = dict(jobs.order_by().values_list("status").annotate(n=Count("id")))
    counts = {status: by_status.get(status, 0) for status in Status.values}
    due = jobs.due()
    due_count = due.count()
    oldest = due.aggregate(oldest=Min("run_after"))["oldest"]
    finished_recently = jobs.filter(
        status__in=[Status.SUCCEEDED, Status.FAILED], finished_at__gte=now - THROUGHPUT_WINDOW
    ).count()
    per_second = finished_recently / THROUGHPUT_WINDOW.total_seconds()
    hour_ago = now - timedelta(hours=1)
    return {
        "database_time": now.isoformat(),
        "counts": counts,
        "due": due_count,
        "by_queue": _counts(
            jobs.order_by().values("queue", "status").annotate(n=Count("id")), "queue"
        ),
        "by_name": _counts(
            jobs.order_by().values("name", "status").annotate(n=Count("id")), "name"
        ),
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
    """Delete finished jobs (and their errors) that finished more than ``older_than`` ago."""
    statuses = [Status.SUCCEEDED, Status.CANCELLED] + ([Status.FAILED] if include_failed else [])
    cutoff = database_now(using) - older_than
    old = Job.objects.using(using).filter(status__in=statuses, finished_at__lt=cutoff)
    deleted = 0
    while ids := list(old.order_by().values_list("id", flat=True)[:PURGE_BATCH]):
        JobError.objects.using(using).filter(job_id__in=ids).delete()
        batch = Job.objects.using(using).filter(id__in=ids).only("id")  # no payloads fetched
        deleted += batch.delete()[1].get("async_queue.Job", 0)
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
