"""Row 7: lost database connections (terminated backends, a database outage) lose no job.

The outage is simulated with a TCP proxy between the workers and PostgreSQL
(the server is shared with other test runs, so it is never restarted): going
down, the proxy drops every connection and refuses new ones, and the workers'
backends are terminated, as a restart would do.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection

from async_queue import Job, JobError
from tests.conftest import wait_for
from tests.faults.conftest import report, size

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
FOREVER = ("--forever", "--sleep", "0.1", "-v", "0")
# The progress connection's only write (async_queue.sql.postgresql.RowStore).
PROGRESS_SQL = "%RETURNING cancel_requested_at IS NOT NULL%"


def worker_backends(*, progress: bool) -> list[tuple[int, str]]:
    """(pid, state) of the other client backends of the test database: progress or job ones."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
            f"AND (query LIKE %s) = {'true' if progress else 'false'}",
            [PROGRESS_SQL],
        )
        return cursor.fetchall()


def terminate(pids: list[int]) -> int:
    if not pids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM unnest(%s) AS p WHERE pg_terminate_backend(p)", [pids])
        return cursor.fetchone()[0]


def test_terminated_job_and_progress_connections_lose_and_double_no_job(start_worker, ledger):
    """Row 7: pg_terminate_backend on job and progress connections; exact counter."""
    jobs = size(500, 5000)
    interval = size(0.25, 1.0)
    ids = ledger.schedule(jobs, kwargs={"progress": True, "pause": 0.005})
    workers = [start_worker(*FOREVER, env=ledger.env) for _ in range(4)]
    rng = random.Random(7)
    killed = {"job": 0, "progress": 0}
    started = time.monotonic()
    while not ledger.done(ids):
        assert time.monotonic() - started < size(120, 900), "the jobs did not finish"
        time.sleep(interval)
        job_backends = worker_backends(progress=False)
        # Prefer a connection inside a job's transaction: that is where a loss hurts.
        busy = [pid for pid, state in job_backends if state != "idle"]
        victims = busy or [pid for pid, _ in job_backends]
        if victims:
            killed["job"] += terminate([rng.choice(victims)])
        progress = [pid for pid, _ in worker_backends(progress=True)]
        if progress:
            killed["progress"] += terminate([rng.choice(progress)])
    elapsed = time.monotonic() - started
    assert all(worker.process.poll() is None for worker in workers), "a worker died"
    ledger.assert_exactly_once(ids)
    assert killed["job"] >= 3
    assert killed["progress"] >= 3
    executions = ledger.executions()
    report(
        7,
        "terminated connections",
        jobs=jobs,
        workers=len(workers),
        interval_s=interval,
        job_connections_killed=killed["job"],
        progress_connections_killed=killed["progress"],
        rolled_back_executions=sum(executions.values()) - jobs,
        lost_attempts=JobError.objects.filter(job__in=ids).count(),
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
        seconds=round(elapsed, 1),
    )


class Proxy:
    """Forwards a local port to PostgreSQL; ``down()`` drops every connection, refuses new."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            doomed = [listener, *self._sockets] if listener else list(self._sockets)
            self._sockets.clear()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(self.target)
            except OSError:
                if self._listener is not listener:
                    return
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    client.close()
                    server.close()
                    return
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def log_records(text: str) -> list[tuple[str, bool]]:
    """A worker's stderr as (message, followed by a traceback) log records."""
    records: list[tuple[str, bool]] = []
    state = "message"
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            if records and state == "message":
                records[-1] = (records[-1][0], True)
            state = "frames"
        elif state == "frames":
            if line and not line[0].isspace():
                state = "exception"  # the exception's own line ends the frames
        elif state == "exception":
            continued = not line or line[0].isspace()
            if not continued and not line.startswith(("The above exception", "During handling")):
                records.append((line, False))
                state = "message"
        elif line.strip():
            records.append((line, False))
    return records


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    settings = connection.settings_dict
    forwarder = Proxy((settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)))
    yield forwarder
    forwarder.down()


def test_workers_survive_a_database_outage_quietly_and_resume_at_once(start_worker, ledger, proxy):
    """Row 7: the database goes away for a while; workers log little and resume within 5 s."""
    outage = size(4.0, 10.0)
    env = {**ledger.env, "ASYNC_QUEUE_PG_PORT": str(proxy.port)}
    workers = [start_worker(*FOREVER, env=env) for _ in range(2)]
    ids = ledger.schedule(size(300, 1000), kwargs={"progress": True, "pause": 0.02})
    # Go down while jobs run.
    wait_for(lambda: Job.objects.filter(pk__in=ids, status="succeeded").count() >= 20, 30)
    before = [len(worker.stderr) for worker in workers]
    proxy.down()
    terminate([pid for pid, _ in worker_backends(progress=False) + worker_backends(progress=True)])
    time.sleep(outage / 2)
    # Written through this process's direct connection; first in line once workers resume.
    during = ledger.schedule(1, priority=1)
    time.sleep(outage / 2)
    logged = [worker.stderr[start:] for worker, start in zip(workers, before, strict=True)]
    proxy.up()
    back = time.monotonic()
    wait_for(lambda: ledger.done(during), timeout=30)
    resumed_in = time.monotonic() - back
    wait_for(lambda: ledger.done(ids), timeout=size(60, 240))

    assert all(worker.process.poll() is None for worker in workers), "a worker died"
    assert resumed_in <= 5.0
    for text in logged:
        records = log_records(text)
        # About once a second at most while it is down ...
        assert len(records) <= outage + 2, text
        # ... and a traceback only for the first error of each kind, not every second.
        with_traceback = [message for message, traceback in records if traceback]
        assert len(with_traceback) == len(set(with_traceback)), text
    ledger.assert_exactly_once(ids + during)
    report(
        7,
        "database outage",
        outage_s=outage,
        workers=len(workers),
        log_records_per_worker=[len(log_records(text)) for text in logged],
        log_lines_per_worker=[len(text.splitlines()) for text in logged],
        resumed_in_s=round(resumed_in, 2),
        jobs=len(ids) + 1,
        counter=ledger.value(),
        duplicates=ledger.duplicates(),
    )
