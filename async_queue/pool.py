"""``flush_queue --forever --processes N``: a supervisor for a machine's share of workers.

The supervisor starts N worker processes (each the same ``flush_queue --forever``
command, without ``--processes``), restarts any that exits or dies (a worker
that ran ``--max-jobs`` jobs exits 0 to be recycled), and on SIGTERM/SIGINT
forwards SIGTERM to every worker (each finishes its job) and waits for them; a
second signal is forwarded too, which aborts the running jobs. Workers are
separate processes started afresh (not forked), so no database connection or
lock is ever shared between them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

logger = logging.getLogger("async_queue.pool")

# A worker that keeps dying at once is restarted at most this often.
RESTART_BACKOFF = 1.0


def worker_command(argv: Sequence[str], max_jobs: int | None) -> list[str]:
    """The command line of one worker: this command without ``--processes``/``--max-jobs``."""
    args: list[str] = []
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
            continue
        if arg in ("--processes", "--max-jobs"):
            skip = True
            continue
        if arg.startswith(("--processes=", "--max-jobs=")):
            continue
        args.append(arg)
    if max_jobs is not None:
        args += ["--jobs", str(max_jobs)]
    if argv[0].endswith(os.path.join("django", "__main__.py")):
        # Started as "python -m django": running that file as a script would put
        # django/ itself on sys.path (shadowing the standard library's "http").
        return [sys.executable, "-m", "django", *args]
    return [sys.executable, argv[0], *args]


class Pool:
    """Keeps ``size`` worker processes running until told to stop."""

    def __init__(self, command: list[str], size: int) -> None:
        self.command = command
        self.size = size
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * size
        self.started_at = [0.0] * size
        self.signals_received = 0
        self.signalled: set[int] = set()

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            while not self.signals_received:
                for slot in range(self.size):
                    self._keep_alive(slot)
                time.sleep(0.2)
            return self._wait_for_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def pids(self) -> list[int]:
        return [worker.pid for worker in self.workers if worker is not None]

    def _keep_alive(self, slot: int) -> None:
        worker = self.workers[slot]
        if worker is not None:
            code = worker.poll()
            if code is None:
                return
            if code == 0:
                logger.info("Worker %s exited (recycled); starting a new one.", worker.pid)
            else:
                logger.warning("Worker %s exited with %s; starting a new one.", worker.pid, code)
            # Reported once; a stop from now on has nothing to wait for in this slot.
            self.workers[slot] = None
        if time.monotonic() - self.started_at[slot] < RESTART_BACKOFF:
            return  # let a worker that dies at start-up not spin
        if self.signals_received:
            return  # stopping: a worker started now would never get the signal
        self.workers[slot] = subprocess.Popen(self.command)
        self.started_at[slot] = time.monotonic()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals_received += 1
        for worker in self.workers:
            if worker is not None and worker.poll() is None:
                os.kill(worker.pid, signal.SIGTERM)
                self.signalled.add(worker.pid)

    def _wait_for_all(self) -> int:
        codes = []
        for worker in self.workers:
            if worker is None:
                continue
            if worker.pid not in self.signalled:
                if worker.poll() is not None:  # it died before the stop, not of it
                    logger.warning("Worker %s exited with %s.", worker.pid, worker.returncode)
                    continue
                os.kill(worker.pid, signal.SIGTERM)  # started as the signal came in
            codes.append(worker.wait())
        # -SIGTERM: a worker still starting up, before its handler was installed,
        # so it had no job to finish.
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1
