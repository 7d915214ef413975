"""flush_queue --forever --processes N: a supervised pool of real worker processes."""

import os
import signal
from pathlib import Path

import pytest

from async_queue import Job, schedule
from async_queue.pool import worker_command
from tests.conftest import wait_for
from tests.testapp import tasks
from tests.testapp.models import Record

pytestmark = pytest.mark.django_db(transaction=True)


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_worker_command_drops_pool_options():
    argv = ["manage.py", "flush_queue", "--forever", "--processes", "3", "--max-jobs=5", "-v", "0"]
    assert worker_command(argv, 5)[1:] == [
        "manage.py",
        "flush_queue",
        "--forever",
        "-v",
        "0",
        "--jobs",
        "5",
    ]


def test_pool_restarts_a_killed_worker_and_stops_gracefully(start_worker):
    pool = start_worker("--forever", "--sleep", "0.1", "--processes", "2")
    pid = pool.process.pid
    wait_for(lambda: len(children(pid)) == 2)
    first, second = sorted(children(pid))
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(children(pid)) == 2 and first not in children(pid))
    for n in range(20):
        schedule(tasks.record, [str(n)])
    wait_for(lambda: Record.objects.count() == 20, timeout=30)
    workers = children(pid)
    pool.send_signal(signal.SIGTERM)
    assert pool.wait(timeout=30) == 0
    assert not any(alive(child) for child in workers)
    assert second in workers


def test_max_jobs_recycles_workers(start_worker):
    for n in range(6):
        schedule(tasks.record, [str(n)])
    pool = start_worker("--forever", "--sleep", "0.1", "--processes", "1", "--max-jobs", "2")
    wait_for(lambda: Job.objects.succeeded().count() == 6, timeout=60)
    # Three worker processes, two jobs each.
    workers = {worker.split(":")[1] for worker in Job.objects.values_list("worker", flat=True)}
    assert len(workers) == 3
    pool.send_signal(signal.SIGTERM)
    assert pool.wait(timeout=30) == 0


def test_pool_options_need_forever(manage):
    result = manage("flush_queue", "--processes", "2", check=False)
    assert result.returncode == 1
    assert "go with --forever" in result.stderr


def test_a_worker_that_died_before_the_stop_is_reported_once_and_the_pool_exits_0(start_worker):
    pool = start_worker("--forever", "--sleep", "0.1", "--processes", "1")
    pid = pool.process.pid
    wait_for(lambda: len(children(pid)) == 1)
    # Killed at once, so that the restart waits out RESTART_BACKOFF when the stop comes.
    os.kill(children(pid).pop(), signal.SIGKILL)
    wait_for(lambda: "exited with -9" in pool.stderr)
    pool.send_signal(signal.SIGTERM)
    assert pool.wait(timeout=30) == 0, pool.stderr
    assert pool.stderr.count("exited with -9") == 1


def test_a_worker_killed_just_before_the_stop_does_not_fail_the_pool(start_worker):
    pool = start_worker("--forever", "--sleep", "0.1", "--processes", "2")
    pid = pool.process.pid
    wait_for(lambda: len(children(pid)) == 2)
    victim = min(children(pid))
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not alive(victim), timeout=5)
    pool.send_signal(signal.SIGTERM)  # most likely before the pool noticed the death
    assert pool.wait(timeout=30) == 0, pool.stderr
