"""Job functions of the fault rows about the web, security and payloads (rows 9, 14, 15, 17)."""

from __future__ import annotations

import os
import sys
import time

from async_queue import job
from async_queue.progress import report_progress

from .jobs import log_execution


@job
def hold(seconds: float, release: str = "") -> float:
    """Hold the job's declared objects for ``seconds``, or until the file ``release`` exists.

    Logs ``hold`` to the execution log once the body runs (its object locks are taken).
    """
    started = time.monotonic()
    log_execution("hold")
    report_progress(0, 1, "holding")
    while time.monotonic() - started < seconds:
        if release and os.path.exists(release):
            break
        time.sleep(0.05)
    return round(time.monotonic() - started, 3)


@job
def loaded(names: list[str]) -> list[str]:
    """Which of the modules ``names`` this worker process has imported."""
    return [name for name in names if name in sys.modules]


@job
def leak(password: str, api_token: str, note: str) -> None:
    """Fail with markup in the message while secrets sit in the frame's locals."""
    combined = f"{password}:{api_token}"  # a frame local a traceback must not show
    assert combined
    raise RuntimeError(f"could not post {note}")


@job
def fail_hugely(characters: int) -> None:
    """Fail with a message far over the traceback cap, in multi-byte characters."""
    raise ValueError("é" * characters)


try:  # Django 6+: a django.tasks task, enqueued through the queue's backend
    from django.tasks import task
except ImportError:  # pragma: no cover - older Django
    pass
else:

    @task
    def django_task(**kwargs: object) -> None:
        """Never runs: only its enqueue() is tried."""
