import datetime as dt

import pytest
from django.db.models.functions import Now
from django.test import override_settings
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from async_queue import Job, metrics, schedule
from tests.conftest import login, make_user
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(client, **headers):
    return client.get(reverse("async_queue:metrics"), **headers)


def samples(text):
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_parse_and_match_the_database(staff_client):
    for _ in range(2):
        schedule(tasks.echo, queue="mail")
    Job.objects.filter(queue="mail").update(run_after=Now() - dt.timedelta(seconds=30))
    schedule(tasks.echo, run_after=dt.timedelta(hours=1))
    for _ in range(3):
        schedule(tasks.record, ["x"]).execute()
    schedule(tasks.fail, max_attempts=1).execute()
    old = schedule(tasks.record, ["old"])
    old.execute()
    Job.objects.filter(pk=old.pk).update(finished_at=Now() - dt.timedelta(hours=2))

    response = scrape(staff_client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    seen = samples(response.content.decode())
    assert seen[("async_queue_jobs", (("queue", "mail"), ("status", "queued")))] == 2
    assert seen[("async_queue_jobs", (("queue", "default"), ("status", "queued")))] == 1
    # Only the active statuses: counting the stored history would read the whole table.
    assert {dict(labels)["status"] for name, labels in seen if name == "async_queue_jobs"} == {
        "queued"
    }
    assert seen[("async_queue_due_jobs", ())] == 2
    assert 29 <= seen[("async_queue_oldest_due_job_age_seconds", ())] < 120
    assert seen[("async_queue_metrics_window_seconds", ())] == 60
    # The job that finished two hours ago is outside the window.
    record = (("name", "tests.testapp.tasks.record"), ("status", "succeeded"))
    assert seen[("async_queue_recently_finished_jobs", record)] == 3
    failed = (("name", "tests.testapp.tasks.fail"), ("status", "failed"))
    assert seen[("async_queue_recently_finished_jobs", failed)] == 1
    name = (("name", "tests.testapp.tasks.record"),)
    assert seen[("async_queue_recent_job_duration_seconds_count", name)] == 3
    assert 0 <= seen[("async_queue_recent_job_duration_seconds_sum", name)] < 60
    oldest = "async_queue_oldest_finished_job_age_seconds"
    assert 7190 < seen[(oldest, (("status", "succeeded"),))] < 7300
    assert 0 <= seen[(oldest, (("status", "failed"),))] < 60
    assert seen[(oldest, (("status", "cancelled"),))] == 0  # none stored


def test_the_window_of_recent_jobs_is_a_setting(staff_client):
    job = schedule(tasks.record, ["x"])
    job.execute()
    Job.objects.filter(pk=job.pk).update(finished_at=Now() - dt.timedelta(seconds=600))
    record = (("name", "tests.testapp.tasks.record"), ("status", "succeeded"))
    assert ("async_queue_recently_finished_jobs", record) not in samples(scrape(staff_client).text)
    with override_settings(ASYNC_QUEUE={"METRICS_WINDOW": 900}):
        seen = samples(scrape(staff_client).text)
    assert seen[("async_queue_metrics_window_seconds", ())] == 900
    assert seen[("async_queue_recently_finished_jobs", record)] == 1


def test_a_scrape_costs_a_fixed_number_of_statements(django_assert_num_queries):
    for index in range(20):
        schedule(tasks.record, [index], queue=f"q{index % 3}").execute()
        schedule(tasks.echo, queue=f"q{index % 4}")
    # The database clock, the active jobs, two over the recent window, one index
    # probe per finished status; none is a server-side cursor (PgBouncer-safe).
    with django_assert_num_queries(7):
        metrics.render()


def test_metrics_need_staff_or_the_token(client):
    assert scrape(client).status_code == 403
    login(client, make_user("someone"))
    assert scrape(client).status_code == 403
    client.logout()
    with override_settings(ASYNC_QUEUE={"METRICS_TOKEN": "s3cret"}):
        assert scrape(client, HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
        assert scrape(client, HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    assert client.post(reverse("async_queue:metrics")).status_code == 405
