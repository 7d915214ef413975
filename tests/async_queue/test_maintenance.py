import datetime as dt
import json

import pytest
from django.db.models.functions import Now

from async_queue import Job, JobError, Status, maintenance, schedule
from async_queue.maintenance import health
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_queue_health_reports_counts_age_failures_and_drain_estimate(manage):
    for _ in range(3):
        schedule(tasks.record, ["x"], queue="mail")
    schedule(tasks.echo, run_after=dt.timedelta(hours=1))
    Job.objects.filter(queue="mail").update(run_after=Now() - dt.timedelta(seconds=30))
    done = schedule(tasks.echo)
    done.execute()
    failed = schedule(tasks.fail, max_attempts=1)
    failed.execute()

    report = json.loads(manage("queue_health").stdout)
    assert report["counts"] == {
        "queued": 4,
        "running": 0,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
    }
    assert report["due"] == 3
    assert report["by_queue"]["mail"] == {"queued": 3}
    # By queue and name: the active jobs only (the history would be a scan).
    assert report["by_name"] == {
        "tests.testapp.tasks.record": {"queued": 3},
        "tests.testapp.tasks.echo": {"queued": 1},
    }
    assert report["count_cap"] == 10_000
    assert 30 <= report["oldest_due_age_seconds"] < 120
    assert report["failed_last_hour"] == 1
    assert report["errors_last_hour"] == 1
    # 2 jobs finished in the 10-minute window: 0.2/min, so 3 due jobs take ~900 s.
    assert report["throughput_per_minute"] == pytest.approx(0.2)
    assert report["estimated_drain_seconds"] == pytest.approx(900, rel=0.01)


def test_health_of_an_empty_queue():
    report = health()
    assert report["due"] == 0
    assert report["oldest_due_age_seconds"] is None
    assert report["estimated_drain_seconds"] == 0.0


def test_health_counts_each_finished_status_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(maintenance, "COUNT_CAP", 2)
    for _ in range(4):
        schedule(tasks.echo).execute()
        schedule(tasks.echo, queue="mail")
    report = health()
    assert report["counts"] == {
        "queued": 4,  # active jobs are counted exactly
        "running": 0,
        "succeeded": 3,  # "more than 2"
        "failed": 0,
        "cancelled": 0,
    }
    assert report["count_cap"] == 2
    assert report["by_queue"] == {"mail": {"queued": 4}}


def _finished(status, days_ago):
    job = Job.objects.create(name="tests.testapp.tasks.echo", status=status)
    Job.objects.filter(pk=job.pk).update(finished_at=Now() - dt.timedelta(days=days_ago))
    JobError.objects.create(job=job, attempt=1, exception="ValueError")
    return job


def test_purge_jobs_deletes_old_finished_jobs_keeping_failed_ones(manage):
    old = [_finished(s, 10) for s in (Status.SUCCEEDED, Status.CANCELLED)]
    old_failed = _finished(Status.FAILED, 10)
    recent = _finished(Status.SUCCEEDED, 1)
    queued = schedule(tasks.echo)

    assert manage("purge_jobs", "--older-than", "7").stdout == "Deleted 2 finished job(s).\n"
    assert not Job.objects.filter(pk__in=[j.pk for j in old]).exists()
    assert set(Job.objects.values_list("pk", flat=True)) == {old_failed.pk, recent.pk, queued.pk}

    manage("purge_jobs", "--older-than", "7", "--include-failed")
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, queued.pk}
    assert JobError.objects.count() == 1


def test_purge_jobs_requires_older_than(manage):
    result = manage("purge_jobs", check=False)
    assert result.returncode != 0
    assert "--older-than" in result.stderr


def test_queue_health_fails_when_the_oldest_due_job_is_too_old(manage):
    assert manage("queue_health", "--fail-if-older-than", "60").returncode == 0  # empty queue
    job = schedule(tasks.echo)
    Job.objects.filter(pk=job.pk).update(run_after=Now() - dt.timedelta(seconds=120))
    assert manage("queue_health", "--fail-if-older-than", "300").returncode == 0
    result = manage("queue_health", "--fail-if-older-than", "60", check=False)
    assert result.returncode == 1
    assert "over the 60s limit" in result.stderr
    assert json.loads(result.stdout)["due"] == 1  # the report is still printed


def test_purge_removes_the_rows_of_workers_gone_long_ago():
    from datetime import timedelta

    from django.utils import timezone

    from async_queue.maintenance import purge
    from async_queue.models import Worker

    long_ago = timezone.now() - timedelta(days=30)
    Worker.objects.create(name="stopped-old", stopped_at=long_ago)
    Worker.objects.create(name="lost-old", lost_at=long_ago)
    Worker.objects.create(name="stopped-new", stopped_at=timezone.now())
    Worker.objects.create(name="alive")
    purge(timedelta(days=7))
    assert set(Worker.objects.values_list("name", flat=True)) == {"stopped-new", "alive"}
