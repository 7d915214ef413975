"""What a benchmark run stands on: its own database, subprocesses, and SQL on the side.

``Harness`` creates the database and migrates it, starts ``flush_queue`` workers
and raw loops as subprocesses (their output kept for the error message, then
removed), and runs untimed SQL through a psycopg connection of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .jobs import COUNTER_ROWS, COUNTER_TABLE
from .raw import connect_kwargs

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "benchmarks.settings"


def read_status_kb(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in kB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}.")


class BenchmarkError(RuntimeError):
    """The run cannot go on; the message says what failed (and quotes its process's output)."""


class Harness:
    """The database, the processes and the SQL helpers of one run."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.database: str = options.database
        self.connect = {
            "host": os.environ.get("ASYNC_QUEUE_PG_HOST", "127.0.0.1"),
            "port": int(os.environ.get("ASYNC_QUEUE_PG_PORT", "5432")),
            "user": os.environ.get("ASYNC_QUEUE_PG_USER", "postgres"),
            "password": os.environ.get("ASYNC_QUEUE_PG_PASSWORD", ""),
            "dbname": self.database,
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.raw: psycopg.Connection[Any] | None = None
        self.spec: dict[str, Any] = {}
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "ASYNC_QUEUE_BENCH_DB_NAME": self.database,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        # Output of the subprocesses; a failure quotes it, then it goes with the run.
        self._logs = tempfile.TemporaryDirectory(prefix="async_queue_bench_")
        self.logs = Path(self._logs.name)

    def log(self, message: str) -> None:
        if not self.options.quiet:
            print(f"[bench] {message}", file=sys.stderr, flush=True)

    # -- setup and teardown ---------------------------------------------------------

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(**{**self.connect, "dbname": "postgres"}, autocommit=True)

    def _drop_database(self) -> None:
        with self._admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.database)
                )
            )

    def setup(self) -> None:
        self.log(f"creating database {self.database}")
        self._drop_database()
        with self._admin() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        os.environ.update(
            DJANGO_SETTINGS_MODULE=SETTINGS_MODULE, ASYNC_QUEUE_BENCH_DB_NAME=self.database
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        self.raw = psycopg.connect(**connect_kwargs(self._spec_base()), autocommit=True)
        self.raw.execute(
            f"CREATE TABLE {COUNTER_TABLE} (id integer PRIMARY KEY, n bigint NOT NULL)"
        )

    def teardown(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if self.raw is not None:
            self.raw.close()
        self._logs.cleanup()
        if self.options.keep:
            self.log(f"kept database {self.database}")
        else:
            self._drop_database()

    def _spec_base(self) -> dict[str, Any]:
        return {"connect": self.connect, "binding": self.options.raw_binding}

    def _sql(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        assert self.raw is not None
        with self.raw.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def reset(self) -> None:
        """An empty queue (fresh table files, ids from 1) and zeroed counters."""
        self._sql(
            "TRUNCATE async_queue_job, async_queue_joblock, async_queue_joberror RESTART IDENTITY"
        )
        self._sql(f"TRUNCATE {COUNTER_TABLE}")
        self._sql(
            f"INSERT INTO {COUNTER_TABLE} SELECT g, 0 FROM generate_series(1, %s) g",
            [COUNTER_ROWS],
        )

    def enqueue(self, calls: Sequence[Any]) -> None:
        """Queue ``calls`` (untimed setup) and refresh the planner's statistics."""
        from django.db import transaction

        from async_queue import schedule_many

        for start in range(0, len(calls), 5000):
            with transaction.atomic():
                schedule_many(calls[start : start + 5000])
        self._sql("ANALYZE async_queue_job")

    def succeeded(self) -> int:
        return self._sql("SELECT count(*) FROM async_queue_job WHERE status = 'succeeded'")[0][0]

    # -- processes ----------------------------------------------------------------------

    def _spawn(self, args: list[str], label: str) -> subprocess.Popen[bytes]:
        path = self.logs / f"{len(self.processes):02d}-{label}.log"
        with open(path, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, *args],
                env=self.env,
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        process.log_path = path  # type: ignore[attr-defined]
        self.processes.append(process)
        return process

    def spawn_worker(self, *args: str) -> subprocess.Popen[bytes]:
        return self._spawn(["-m", "django", "flush_queue", "-v", "0", *args], "flush_queue")

    def spawn_raw(
        self, body: str, *, listen: bool = False, max_jobs: int | None = None
    ) -> subprocess.Popen[bytes]:
        spec = {**self.spec, "body": body, "listen": listen, "max_jobs": max_jobs}
        return self._spawn(["-m", "benchmarks.queue", "--raw-worker", json.dumps(spec)], "raw")

    def wait(self, processes: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in processes:
            try:
                code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = None
            if code != 0:
                log = process.log_path.read_text(errors="replace")  # type: ignore[attr-defined]
                raise BenchmarkError(f"{process.args} ended with {code}:\n{log[-4000:]}")

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise BenchmarkError(f"Timed out after {timeout:g}s waiting for {what}.")
            for process in self.processes:
                if process.poll() not in (None, 0):
                    self.wait([process], 0)
            time.sleep(0.01)
