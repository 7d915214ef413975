import logging
import time

import pytest
from django.test import override_settings

from async_queue import (
    InvalidJobState,
    Job,
    Status,
    cancel,
    current_job,
    report_progress,
    schedule,
)
from async_queue.progress import snapshot
from tests.conftest import wait_for
from tests.testapp import tasks
from tests.testapp.models import Counter

pytestmark = pytest.mark.django_db(transaction=True)
FOREVER = ("--forever", "--sleep", "0.1")


def live(job):
    job.refresh_from_db()
    return snapshot([job])[job.pk]


def test_progress_is_visible_from_another_connection_while_the_job_runs(start_worker):
    job = schedule(tasks.count_to, [30], {"pause": 0.1})
    worker = start_worker(*FOREVER)
    wait_for(lambda: (live(job).current or 0) >= 3)
    first = live(job)
    assert first.total == 30
    assert first.message.startswith("step ")
    assert not Counter.objects.exists()  # the job's own write is not committed yet
    wait_for(lambda: (live(job).current or 0) > first.current)
    wait_for(lambda: Job.objects.succeeded().exists(), timeout=30)
    job.refresh_from_db()
    final = snapshot([job])[job.pk]
    assert (final.current, final.total, final.message, final.percent) == (30, 30, "step 30", 100)
    assert job.progress_updated_at is not None
    worker.kill()


def test_throttled_reports_cost_little_and_the_final_value_is_written(
    django_assert_max_num_queries,
):
    # The baseline, on this machine and under its present load: reports that each write.
    unthrottled = schedule(tasks.report_many, [200])
    with override_settings(ASYNC_QUEUE={"PROGRESS_INTERVAL": 0}):
        unthrottled.execute()
    per_write = unthrottled.result / 200
    job = schedule(tasks.report_many, [100_000])
    with override_settings(ASYNC_QUEUE={"PROGRESS_INTERVAL": 0.25}):
        job.execute()
    seconds = job.result
    # 100,000 calls: a few microseconds each, and at most ~4 writes a second, so far less
    # than the 5,000 writes this allows (a write costs a hundred times a throttled call).
    assert seconds < 5_000 * per_write, (seconds, per_write)
    assert (job.progress_current, job.progress_total) == (99_999, 100_000)


def test_writes_are_throttled_per_interval():
    from async_queue.progress import Reporter

    class CountingStore:
        writes = 0

        def write(self, *args):
            self.writes += 1
            return False

    store = CountingStore()
    reporter = Reporter(Job(pk=1), store, interval=60)
    for n in range(1000):
        reporter.report(n, 1000, "")
    assert store.writes == 1  # only the first; the interval has not passed
    reporter.report(1000, 1000, "done")
    assert store.writes == 2  # the final value is always written


def test_report_progress_outside_a_job_does_nothing_and_says_so(caplog):
    with caplog.at_level(logging.DEBUG, logger="async_queue.progress"):
        report_progress(1, 2)
    assert "outside a job" in caplog.text
    assert current_job() is None


def test_bad_progress_values_are_refused():
    from async_queue.progress import Reporter, _reporter

    token = _reporter.set(Reporter(Job(pk=1), None))
    try:
        with pytest.raises(ValueError, match="current must be"):
            report_progress(-1)
        with pytest.raises(ValueError, match="total must be"):
            report_progress(1, "10")
    finally:
        _reporter.reset(token)


def test_current_job_inside_a_job():
    job = schedule(tasks.whoami)
    job.execute()
    assert job.result == job.pk


def test_cancel_a_queued_job():
    job = schedule(tasks.increment)
    assert cancel(job) == "cancelled"
    assert job.status == Status.CANCELLED
    with pytest.raises(InvalidJobState):
        cancel(job)


@pytest.mark.parametrize("task", [tasks.count_to, tasks.wait_for_cancel])
def test_cancel_a_running_job_rolls_its_writes_back(start_worker, task):
    job = schedule(
        task,
        [600] if task is tasks.count_to else [60],
        {"pause": 0.05} if task is tasks.count_to else {},
    )
    worker = start_worker(*FOREVER)
    wait_for(lambda: Job.objects.running().exists())
    time.sleep(0.3)
    job.refresh_from_db()
    assert cancel(job) == "requested"
    assert snapshot([Job.objects.get(pk=job.pk)])[job.pk].cancel_requested
    wait_for(lambda: Job.objects.cancelled().exists(), timeout=20)
    job.refresh_from_db()
    assert job.finished_at is not None
    assert not Counter.objects.exists()  # the body's write rolled back
    assert not job.errors.exists()
    worker.kill()
