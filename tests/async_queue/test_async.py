"""aschedule(), async Job helpers and async def job functions."""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from async_queue import Job, Status, aschedule, schedule
from tests.testapp import tasks
from tests.testapp.models import Counter

pytestmark = pytest.mark.django_db(transaction=True)


# Coroutines run through async_to_sync, as in an async view: their ORM calls
# come back to this thread, on this test's connection.


def test_aschedule_writes_the_row_from_async_code():
    async def view():
        job = await aschedule(tasks.echo, [1])
        return job, await Job.objects.aget(pk=job.pk)

    job, stored = async_to_sync(view)()
    assert job.pk is not None
    assert stored.args == [1]


def test_wait_returns_when_the_job_finished_and_times_out_otherwise():
    async def view():
        job = await aschedule(tasks.echo, [1])
        with pytest.raises(TimeoutError, match="still queued"):
            await job.wait(timeout=0.3, interval=0.05)
        await sync_to_async(job.execute)()
        finished = await job.wait(timeout=5)
        return finished, await job.arefresh()

    finished, refreshed = async_to_sync(view)()
    assert finished.status == Status.SUCCEEDED
    assert refreshed.result == {"args": [1], "kwargs": {}}


def test_async_job_function_succeeds_and_its_write_commits():
    job = schedule(tasks.async_write, ["written"])
    job.execute()
    assert job.status == Status.SUCCEEDED
    assert Counter.objects.filter(name="written").exists()


def test_async_job_functions_writes_roll_back_with_the_job():
    job = schedule(tasks.async_write_then_fail, ["must-vanish"], max_attempts=1)
    job.execute()
    assert job.status == Status.FAILED
    assert "async job failed after writing" in job.last_error
    assert not Counter.objects.filter(name="must-vanish").exists()


def test_async_functions_are_accepted_by_schedule():
    assert asyncio.iscoroutinefunction(tasks.async_write)
    assert schedule(tasks.async_write, ["x"]).name == "tests.testapp.tasks.async_write"
