"""Queue metrics in the Prometheus/OpenMetrics text format.

Every value is read from the job rows when scraped (no in-process counters, so
any number of workers and web processes report the same figures). A scrape
costs what the active jobs cost, never a pass over the stored history: a table
of millions of finished jobs answers as fast as an empty one. Each statement
goes through an index:

- ``async_queue_jobs{queue, status}``: queued and running jobs, by queue
  (the status index);
- ``async_queue_due_jobs`` and ``async_queue_oldest_due_job_age_seconds``
  (the claim index);
- ``async_queue_recently_finished_jobs{name, status}`` and the summary
  ``async_queue_recent_job_duration_seconds{name}``: jobs that finished in the
  last ``METRICS_WINDOW`` seconds (the ``(status, finished_at)`` index), so the
  work grows with the recent throughput, not with the table;
- ``async_queue_oldest_finished_job_age_seconds{status}``: the oldest stored
  finished job of each status (one index probe each): whether retention
  (``purge_jobs``) keeps up.

No statement uses a server-side cursor, so scrapes also work behind PgBouncer in
transaction pooling mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.db.models.functions import Now

from .conf import queue_settings
from .models import FINISHED, Job, JobQuerySet, Status
from .sql import database_now, hinted

ACTIVE = (Status.QUEUED, Status.RUNNING)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _lines(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def _age(now: datetime, then: datetime | None) -> float:
    return 0.0 if then is None else max((now - then).total_seconds(), 0.0)


def active_counts(jobs: JobQuerySet, *fields: str) -> list[tuple[Any, ...]]:
    """``(*fields, status, count, due count, oldest due run_after)`` of queued and running jobs.

    One pass over the active jobs (the status index) gives the counts by
    ``fields`` and the due figures together.
    """
    due = Q(status=Status.QUEUED, run_after__lte=Now())
    # Few of the stored jobs are active: told so, SQLite's planner reads them through
    # the status index instead of walking a whole (queue, status) index to group them.
    return list(
        jobs.filter(hinted(jobs.db, True, status__in=ACTIVE))
        .values_list(*fields, "status")
        .annotate(
            n=Count("id"),
            due=Count("id", filter=due),
            oldest_due=Min("run_after", filter=due),
        )
    )


def render(using: str = "default") -> str:
    """The metrics text for the queue on database ``using``."""
    jobs = Job.objects.using(using).order_by()
    now = database_now(using)
    window = float(queue_settings.METRICS_WINDOW)
    by_queue = sorted(active_counts(jobs, "queue"))
    due_count = sum(due for _, _, _, due, _ in by_queue)
    oldest_due = min((oldest for *_, oldest in by_queue if oldest is not None), default=None)
    # The recent rows are found through the (status, finished_at) index in a subquery
    # and only then grouped: given the grouping and a filter together, SQLite walks
    # the (name, status) index over the whole table instead.
    recent = jobs.filter(finished_at__gte=now - timedelta(seconds=window))
    finished = sorted(
        jobs.filter(pk__in=recent.filter(status__in=FINISHED).values("pk"))
        .values_list("name", "status")
        .annotate(n=Count("id"))
    )
    ran = recent.filter(status__in=[Status.SUCCEEDED, Status.FAILED], started_at__isnull=False)
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    durations = sorted(
        jobs.filter(pk__in=ran.values("pk"))
        .values_list("name")
        .annotate(total=Sum(duration), n=Count("id"))
    )
    # One probe of the (status, finished_at) index per status; MIN over all three
    # statuses at once would read every finished row.
    oldest_finished = {
        status: jobs.filter(status=status).aggregate(oldest=Min("finished_at"))["oldest"]
        for status in FINISHED
    }
    lines = [
        *_lines(
            "async_queue_jobs",
            "gauge",
            "Queued and running jobs, by queue and status.",
            (
                f'async_queue_jobs{{queue="{_label(q)}",status="{s}"}} {n}'
                for q, s, n, _, _ in by_queue
            ),
        ),
        *_lines(
            "async_queue_due_jobs",
            "gauge",
            "Queued jobs that are due.",
            [f"async_queue_due_jobs {due_count}"],
        ),
        *_lines(
            "async_queue_oldest_due_job_age_seconds",
            "gauge",
            "Seconds the oldest due job has waited (0 when none is due).",
            [f"async_queue_oldest_due_job_age_seconds {_age(now, oldest_due):.3f}"],
        ),
        *_lines(
            "async_queue_metrics_window_seconds",
            "gauge",
            "The window of the recently_finished and recent_job_duration metrics "
            "(ASYNC_QUEUE['METRICS_WINDOW']).",
            [f"async_queue_metrics_window_seconds {window:g}"],
        ),
        *_lines(
            "async_queue_recently_finished_jobs",
            "gauge",
            "Jobs that finished in the last METRICS_WINDOW seconds (database clock), by name "
            "and status; divide by the window for a rate.",
            (
                f'async_queue_recently_finished_jobs{{name="{_label(name)}",status="{s}"}} {n}'
                for name, s, n in finished
            ),
        ),
        *_lines(
            "async_queue_recent_job_duration_seconds",
            "summary",
            "Run time (started to finished) of the jobs that succeeded or failed in the last "
            "METRICS_WINDOW seconds, by name.",
            (
                sample
                for name, total, count in durations
                for sample in (
                    f'async_queue_recent_job_duration_seconds_sum{{name="{_label(name)}"}} '
                    f"{max((total or timedelta(0)).total_seconds(), 0.0):.6f}",
                    f'async_queue_recent_job_duration_seconds_count{{name="{_label(name)}"}} '
                    f"{count}",
                )
            ),
        ),
        *_lines(
            "async_queue_oldest_finished_job_age_seconds",
            "gauge",
            "Seconds since the oldest stored finished job of each status finished (0 when none "
            "is stored): what retention (purge_jobs) leaves in the table.",
            (
                f'async_queue_oldest_finished_job_age_seconds{{status="{s}"}} '
                f"{_age(now, oldest):.3f}"
                for s, oldest in oldest_finished.items()
            ),
        ),
        "# EOF",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["render"]
