"""Queue metrics in the Prometheus/OpenMetrics text format.

Every value is read from the job rows when scraped (no in-process counters, so
any number of workers and web processes report the same figures):

- ``async_queue_jobs{queue, status}``: jobs present, by queue and status;
- ``async_queue_due_jobs``: queued jobs whose ``run_after`` has passed;
- ``async_queue_oldest_due_job_age_seconds``: how long the oldest due job has waited;
- ``async_queue_finished_jobs{name, status}``: finished jobs still stored
  (``purge_jobs`` removes old ones, so this is a gauge, not a counter);
- ``async_queue_job_duration_seconds{name}``: a summary (``_sum``, ``_count``)
  of the run time of stored finished jobs that ran.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Min

from .db import database_now
from .models import FINISHED, Job, Status


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _lines(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def render(using: str = "default") -> str:
    """The metrics text for the queue on database ``using``."""
    jobs = Job.objects.using(using).order_by()
    now = database_now(using)
    by_queue = jobs.values_list("queue", "status").annotate(n=Count("id"))
    due = jobs.due()
    oldest = due.aggregate(oldest=Min("run_after"))["oldest"]
    finished = (
        jobs.filter(status__in=FINISHED).values_list("name", "status").annotate(n=Count("id"))
    )
    ran = (
        jobs.filter(status__in=[Status.SUCCEEDED, Status.FAILED], started_at__isnull=False)
        .filter(finished_at__isnull=False)
        .values_list("name", "started_at", "finished_at")
    )
    durations: dict[str, list[float]] = {}
    for name, started, ended in ran:
        entry = durations.setdefault(name, [0.0, 0])
        entry[0] += max((ended - started).total_seconds(), 0.0)
        entry[1] += 1
    lines = [
        *_lines(
            "async_queue_jobs",
            "gauge",
            "Jobs by queue and status.",
            (f'async_queue_jobs{{queue="{_label(q)}",status="{s}"}} {n}' for q, s, n in by_queue),
        ),
        *_lines(
            "async_queue_due_jobs",
            "gauge",
            "Queued jobs that are due.",
            [f"async_queue_due_jobs {due.count()}"],
        ),
        *_lines(
            "async_queue_oldest_due_job_age_seconds",
            "gauge",
            "Seconds the oldest due job has waited (0 when none is due).",
            [
                "async_queue_oldest_due_job_age_seconds "
                f"{0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0):.3f}"
            ],
        ),
        *_lines(
            "async_queue_finished_jobs",
            "gauge",
            "Finished jobs still stored, by name and status.",
            (
                f'async_queue_finished_jobs{{name="{_label(name)}",status="{s}"}} {n}'
                for name, s, n in finished
            ),
        ),
        *_lines(
            "async_queue_job_duration_seconds",
            "summary",
            "Run time of stored finished jobs, by name.",
            (
                sample
                for name, (total, count) in sorted(durations.items())
                for sample in (
                    f'async_queue_job_duration_seconds_sum{{name="{_label(name)}"}} {total:.6f}',
                    f'async_queue_job_duration_seconds_count{{name="{_label(name)}"}} {count}',
                )
            ),
        ),
        "# EOF",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["render"]
