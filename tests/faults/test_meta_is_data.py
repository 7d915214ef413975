"""Row 22: user data never configures the queue.

A job's ``meta`` used to carry its own tracker configuration, so
``schedule(fn, meta={"tracker": {"MODEL": "auth.user", ...}})`` made the queue
write a job's status into any field of any model (a user became superuser this
way), and a forged row's tracker ``CLASS`` path was imported. Here both attacks
run through a real worker: through ``schedule()`` and through forged rows, each
aimed at a real user whose primary key the job's lookup matches, and with a
``CLASS`` naming a module outside the installed apps that leaves a marker when
imported. The jobs run and succeed; no user changes, nothing is imported, and a
tracker chosen by name from settings still mirrors its job.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from async_queue import Job, Status, schedule
from tests.conftest import wait_for
from tests.faults.conftest import report, size
from tests.trackerapp.models import TaskRecord

pytestmark = pytest.mark.django_db(transaction=True)

FUNCTION = "tests.testapp.tasks.echo"


def attack(class_path: str | None = None) -> dict[str, object]:
    """A tracker configuration that would make the job's user-by-pk a superuser."""
    config: dict[str, object] = {
        "MODEL": "auth.user",
        "LOOKUP": "id",
        "FIELDS": {"status": "is_superuser", "updated": "last_login", "error": "first_name"},
        "STATUS_MAP": {status: True for status in ("queued", "running", "succeeded")},
    }
    if class_path:
        config["CLASS"] = class_path
    return config


def victim_for(job_id: int) -> User:
    """A plain user whose primary key is the job's: what the forged LOOKUP matches."""
    user = User.objects.filter(pk=job_id).first()
    if user is None:
        user = User.objects.create_user(username=f"victim-{job_id}", id=job_id)
    return user


def test_meta_never_configures_a_tracker(tmp_path: Path, start_worker):
    rounds = int(size(5, 100))
    marker = tmp_path / "forbidden-imported"
    jobs: list[Job] = []
    for index in range(rounds):
        jobs.append(schedule(FUNCTION, [index], meta={"tracker": attack()}, on_commit=False))
        jobs.append(
            Job.objects.create(
                name=FUNCTION,
                args=[index],
                meta={"tracker": attack("tests.forbidden.Touch")},
                tracker="",
            )
        )
    victims = [victim_for(job.pk) for job in jobs]
    tracked = schedule(FUNCTION, ["named"], tracker="bulk", on_commit=False)
    assert not any(user.is_superuser for user in victims)

    worker = start_worker(
        "--forever", "--sleep", "0.1", env={"FAULT_FORBIDDEN_MARKER": str(marker)}
    )
    started = time.monotonic()
    ids = [job.pk for job in [*jobs, tracked]]
    wait_for(
        lambda: not Job.objects.filter(pk__in=ids).exclude(status=Status.SUCCEEDED).exists(),
        timeout=size(60, 300),
    )
    drained = time.monotonic() - started
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0

    changed = [
        user.username
        for user in User.objects.filter(pk__in=[user.pk for user in victims])
        if user.is_superuser or user.last_login is not None or user.first_name
    ]
    assert changed == []
    assert not marker.exists(), marker.read_text()
    assert "tracker failed" not in worker.stderr, worker.stderr
    record = TaskRecord.objects.get(job_id=tracked.pk)  # a named tracker still works
    assert record.state == "succeeded"
    assert TaskRecord.objects.count() == 1
    report(
        22,
        "meta never configures the queue",
        jobs_with_forged_tracker=len(jobs),
        through_schedule=rounds,
        forged_rows=rounds,
        users_changed=len(changed),
        tracker_class_imported=marker.exists(),
        named_tracker_mirrored=True,
        seconds=round(drained, 2),
    )
