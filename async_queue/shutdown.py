"""Stopping a worker (SIGTERM/SIGINT finish the current job, a second signal aborts it),
and living through a database outage without flooding the logs."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

from .exceptions import WorkerAborted

logger = logging.getLogger("async_queue.worker")


@contextlib.contextmanager
def stop_on_signals(
    running: Callable[[], bool],
    stopping: Callable[[], bool],
    stop: Callable[[], None],
    grace: float | None = None,
) -> Iterator[None]:
    """SIGTERM/SIGINT: the first calls ``stop()`` (finish the current job), a second
    aborts the job that is ``running()`` (``WorkerAborted``: rolled back, requeued).

    With ``grace`` seconds, a job still running that long after the first signal
    is aborted as if the signal had come again.
    """
    timers: list[threading.Timer] = []
    grace_over = threading.Event()

    def end_grace(signum: int) -> None:
        # Set before the signal is sent: the handler may run before this thread ends.
        grace_over.set()
        os.kill(os.getpid(), signum)

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stopping() and running():
            if grace_over.is_set():  # the grace timer sent it
                raise WorkerAborted(f"aborted by {name}: the {grace:g}s grace period ran out")
            raise WorkerAborted(f"aborted by {name}")
        if stopping():
            return
        if grace is not None and running():
            logger.info("Stopping after the current job, or aborting it in %gs.", grace)
            timer = threading.Timer(grace, end_grace, (signum,))
            timer.daemon = True
            timers.append(timer)
            timer.start()
        else:
            logger.info("Stopping after the current job (send the signal again to abort it).")
        stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Outage:
    """The worker loop's database trouble: one traceback per outage, then one line after
    1, 2, 4, ... (at most 60) seconds, and one when the database is back."""

    def __init__(self) -> None:
        self.since: float | None = None
        self._next_log = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since, self._next_log = now, now + 1.0
            logger.exception("Database error in the worker loop; retrying.")
        elif now >= self._next_log:
            down = now - self.since
            self._next_log = now + min(max(down, 1.0), 60.0)
            error = next(iter(str(exc).splitlines()), "")
            logger.error("Database still unavailable after %.0fs; retrying: %s", down, error)

    def over(self) -> None:
        if self.since is not None:
            down = time.monotonic() - self.since
            logger.warning("Database available again after %.1fs; resuming.", down)
            self.since = None
