"""Throughput, latency, connection and memory figures of async_queue on PostgreSQL.

    PYTHONPATH=. python -m benchmarks.queue [--scale 0.1] [--json] [--keep]

Every figure is measured next to a raw baseline in the same run: psycopg without
Django, running the SQL the queue runs. The claim and the fenced completion are
captured from a real ``Worker`` run (``connection.execute_wrapper``), not copied
by hand, so the baseline follows the queue when its SQL changes. Queue workers
are real ``flush_queue`` subprocesses; the raw loops are subprocesses of this
module (``--raw-worker``) that import psycopg only, which is why Django is
imported inside the functions that need it.

Drain rates are timed on the database clock, from the first claim to the last
completion, so that a process's start-up (Django's imports and system checks) is
not counted as per-job cost; the wall-clock times, start-up included, are in the
details. Latencies are database clock too: ``clock_timestamp()`` read by a SELECT
sent in one query string with the scheduling COMMIT, against the job's
``started_at``. The raw loops use psycopg's defaults (server-side binding,
statements prepared after five runs); Django binds client-side and never
prepares, and ``--raw-binding client`` gives the raw loops that handicap too.

The benchmark creates its own database (``--database``, whose name must contain
"bench"), drops it at the end unless ``--keep``, and never touches another one.
It exits 0 when a target is missed (it is a measurement) and lists the misses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "benchmarks.settings"
DEFAULT_DATABASE = "async_queue_bench"
COUNTER_TABLE = "async_queue_bench_counter"
COUNTER_ROWS = 1000
BUMP_SQL = f"UPDATE {COUNTER_TABLE} SET n = n + 1 WHERE id = %s"
PROBE_WORKER = "bench-probe"
MAX_PARAMS = 65535  # PostgreSQL's limit of bind parameters in one statement
BASE_SIZES = {
    "enqueue_many": 5000,
    "enqueue_single": 1000,
    "drain": 5000,
    "latency": 200,
    "connection": 200,
    "memory": 50000,
}

# The columns and values schedule() writes for a job without arguments, in the
# order Django's INSERT names them; run_after is the database's now().
INSERT_COLUMNS = (
    "name",
    "args",
    "kwargs",
    "meta",
    "queue",
    "priority",
    "status",
    "run_after",
    "started_at",
    "finished_at",
    "attempts",
    "max_attempts",
    "worker",
    "result",
    "last_error",
    "user_id",
    "timeout",
    "group_id",
    "waits_for_group",
    "has_locks",
    "progress_current",
    "progress_total",
    "progress_message",
)
# Columns compared between a queue-written and a raw-written row (a self-check).
COMPARED_COLUMNS = [c for c in INSERT_COLUMNS if c not in ("run_after",)] + ["created_at IS NULL"]


# -- the jobs -------------------------------------------------------------------------


def noop() -> None:
    """The no-op job."""


def bump(row: int) -> None:
    """Add one to a counter row: a job whose body is one UPDATE."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(BUMP_SQL, [row])


def backend_pid() -> int:
    """The PostgreSQL backend (connection) this job ran on."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


# -- the raw baseline loop (no Django) ---------------------------------------------------


def require_entry_point() -> None:
    """Refuse to run unless this process is ``python -m benchmarks.queue``.

    A worker running ``benchmarks.settings`` imports this module (its jobs are
    declared there by exact name): importing it must not reach the code that
    creates and drops databases or runs SQL handed to it.
    """
    if Path(sys.argv[0]).resolve() != Path(__file__).resolve():
        raise RuntimeError("The benchmark runs only as `python -m benchmarks.queue`.")


def _fill(template: Sequence[dict[str, Any]], slots: dict[str, Any]) -> list[Any]:
    return [slots[item["slot"]] if "slot" in item else item["value"] for item in template]


def connect_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """psycopg.connect() arguments; ``client`` binding mimics Django's default cursor."""
    kwargs = dict(spec["connect"])
    if spec.get("binding") == "client":
        kwargs.update(cursor_factory=psycopg.ClientCursor, prepare_threshold=None)
    return kwargs


def raw_worker(spec: dict[str, Any]) -> int:
    """Claim (autocommit), then BEGIN; body; the fenced completion; COMMIT. Returns jobs run.

    ``listen``: when nothing is due, wait for a NOTIFY on the queue's channel
    (in 0.25 s slices, like the worker) until ``max_jobs`` ran.
    """
    require_entry_point()
    worker = f"raw:{os.getpid()}"
    index = {name: i for i, name in enumerate(spec["columns"])}
    claim_params = _fill(spec["claim_params"], {"worker": worker})
    claim_sql, complete_sql, complete_params = (
        spec["claim_sql"],
        spec["complete_sql"],
        spec["complete_params"],
    )
    body, listen, limit = spec["body"], spec["listen"], spec.get("max_jobs")
    done = 0
    with (
        psycopg.connect(**connect_kwargs(spec), autocommit=True) as conn,
        conn.cursor() as cursor,
    ):
        if listen:
            cursor.execute(f"LISTEN {spec['channel']}")
        while limit is None or done < limit:
            cursor.execute(claim_sql, claim_params)
            row = cursor.fetchone()
            if row is None:
                if not listen:
                    break
                for _ in conn.notifies(timeout=0.25, stop_after=1):
                    pass
                continue
            slots = {"id": row[index["id"]], "attempts": row[index["attempts"]], "worker": worker}
            with conn.transaction():
                if body == "bump":
                    cursor.execute(BUMP_SQL, [row[index["args"]][0]])
                cursor.execute(complete_sql, _fill(complete_params, slots))
                if cursor.rowcount != 1:
                    raise RuntimeError(f"Completion of job {slots['id']} matched no row.")
            done += 1
    return done


# -- results ------------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    queue: float
    raw: float | None
    target: str
    passed: bool | None

    @property
    def ratio(self) -> float | None:
        return self.queue / self.raw if self.raw else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def read_status_kb(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in kB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}.")


class BenchmarkError(RuntimeError):
    pass


# -- the benchmark ---------------------------------------------------------------------


class Benchmark:
    """One run: create the database, measure every figure, drop the database."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.database: str = options.database
        self.sizes = {
            name: max(10, round(base * options.scale)) for name, base in BASE_SIZES.items()
        }
        if options.jobs_memory is not None:
            self.sizes["memory"] = options.jobs_memory
        self.connect = {
            "host": os.environ.get("ASYNC_QUEUE_PG_HOST", "127.0.0.1"),
            "port": int(os.environ.get("ASYNC_QUEUE_PG_PORT", "5432")),
            "user": os.environ.get("ASYNC_QUEUE_PG_USER", "postgres"),
            "password": os.environ.get("ASYNC_QUEUE_PG_PASSWORD", ""),
            "dbname": self.database,
        }
        self.figures: list[Figure] = []
        self.details: dict[str, Any] = {}
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

    # -- the SQL the worker runs ------------------------------------------------------

    def capture(self) -> None:
        """Record the worker's claim and completion statements from one real job run."""
        from django.db import connection, transaction

        from async_queue import Job, Status, schedule_many
        from async_queue.db import CHANNEL
        from async_queue.worker import Worker

        self.reset()
        with transaction.atomic():
            first, probe = schedule_many([(noop, None, None)] * 2)
        # Claim the second row, so that its id (2) and its attempt (1) differ.
        Job.objects.filter(pk=first.pk).cancel()
        statements: list[tuple[str, list[Any]]] = []

        def record(execute: Any, statement: str, params: Any, many: bool, context: Any) -> Any:
            statements.append((statement, list(params or ())))
            return execute(statement, params, many, context)

        worker = Worker("default", worker_id=PROBE_WORKER)
        with connection.execute_wrapper(record):
            ran = worker.drain()
        worker.close()
        probe.refresh_from_db()
        claims = [i for i, (text, _) in enumerate(statements) if "SKIP LOCKED" in text]
        if ran != 1 or probe.status != Status.SUCCEEDED or len(claims) != 2:
            raise BenchmarkError(f"The probe job did not run as expected: {statements!r}")
        claim_sql, claim_params = statements[claims[0]]
        complete_sql, complete_params = statements[claims[0] + 1]
        values = {"worker": PROBE_WORKER, "id": probe.pk, "attempts": probe.attempts}
        self.spec = {
            **self._spec_base(),
            "columns": [field.column for field in Job._meta.concrete_fields],
            "claim_sql": claim_sql,
            "claim_params": _template(claim_params, values),
            "complete_sql": complete_sql,
            "complete_params": _template(complete_params, values),
            "channel": CHANNEL,
        }
        self.details["statements_per_job"] = claims[1] - claims[0]
        self.details["claim_sql"] = claim_sql
        self.details["complete_sql"] = complete_sql

    # -- 1. enqueue -----------------------------------------------------------------------

    def _raw_insert_sql(self, rows: int) -> str:
        row = ", ".join(
            "STATEMENT_TIMESTAMP()" if c == "run_after" else "%s" for c in INSERT_COLUMNS
        )
        return (
            f"INSERT INTO async_queue_job ({', '.join(INSERT_COLUMNS)}) VALUES "
            + ", ".join([f"({row})"] * rows)
            + " RETURNING id, run_after, created_at"
        )

    def _raw_row(self) -> list[Any]:
        from async_queue.conf import queue_settings

        values = {
            "name": f"{__name__}.noop",
            "args": "[]",
            "kwargs": "{}",
            "meta": "{}",
            "queue": queue_settings.DEFAULT_QUEUE,
            "priority": 0,
            "status": "queued",
            "attempts": 0,
            "max_attempts": queue_settings.MAX_ATTEMPTS,
            "worker": "",
            "last_error": "",
            "waits_for_group": False,
            "has_locks": False,
            "progress_message": "",
        }
        return [values.get(c) for c in INSERT_COLUMNS if c != "run_after"]

    def _sample_row(self) -> tuple[Any, ...]:
        return self._sql(f"SELECT {', '.join(COMPARED_COLUMNS)} FROM async_queue_job LIMIT 1")[0]

    def _best(self, run: Callable[[], None], repeat: int = 3) -> float:
        best = math.inf
        for _ in range(repeat):
            self.reset()
            started = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - started)
        return best

    def measure_enqueue(self) -> None:
        from django.db import transaction

        from async_queue import schedule, schedule_many

        assert self.raw is not None
        raw, cursor = self.raw, self.raw.cursor()
        many, single = self.sizes["enqueue_many"], self.sizes["enqueue_single"]
        row = self._raw_row()
        per_statement = MAX_PARAMS // len(row)

        self.log(f"enqueue: schedule_many({many}) vs raw multi-row INSERT")

        def queue_many() -> None:
            with transaction.atomic():
                schedule_many([(noop, None, None)] * many)

        def raw_many() -> None:
            with raw.transaction():
                for start in range(0, many, per_statement):
                    rows = min(per_statement, many - start)
                    cursor.execute(self._raw_insert_sql(rows), row * rows)
                    cursor.fetchall()

        queue_seconds = self._best(queue_many)
        queue_row = self._sample_row()
        raw_seconds = self._best(raw_many)
        raw_row = self._sample_row()
        self.details["enqueue_rows_identical"] = queue_row == raw_row
        if queue_row != raw_row:
            self.log(f"warning: rows differ: queue {queue_row!r} raw {raw_row!r}")
        self._ratio_figure(
            "enqueue_many",
            f"enqueue: schedule_many, {many} jobs in 1 transaction",
            many / queue_seconds,
            many / raw_seconds,
            0.5,
        )

        self.log(f"enqueue: {single} x schedule() in its own transaction vs raw INSERT")
        insert_one = self._raw_insert_sql(1)

        def queue_single() -> None:
            for _ in range(single):
                with transaction.atomic():
                    schedule(noop)

        def raw_single() -> None:
            for _ in range(single):
                with raw.transaction():
                    cursor.execute(insert_one, row)
                    cursor.fetchall()

        queue_seconds = self._best(queue_single)
        raw_seconds = self._best(raw_single)
        self._ratio_figure(
            "enqueue_single",
            f"enqueue: {single} x schedule(), 1 transaction each",
            single / queue_seconds,
            single / raw_seconds,
            0.3,
        )
        cursor.close()

    # -- 2. drain ------------------------------------------------------------------------

    def drain(self, *, workers: int, body: str, raw: bool) -> dict[str, float]:
        """Queue ``drain`` jobs, run ``workers`` processes until none is due; the rates."""
        n = self.sizes["drain"]
        self.reset()
        if body == "bump":
            self.enqueue([(bump, [i % COUNTER_ROWS + 1], None) for i in range(n)])
        else:
            self.enqueue([(noop, None, None)] * n)
        started = time.monotonic()
        processes = [self.spawn_raw(body) if raw else self.spawn_worker() for _ in range(workers)]
        self.wait(processes, timeout=120 + n / 20)
        wall = time.monotonic() - started
        done, window, used = self._sql(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), "
            "EXTRACT(EPOCH FROM max(finished_at) - min(started_at))::float8, "
            "count(DISTINCT worker) FROM async_queue_job"
        )[0]
        if done != n:
            raise BenchmarkError(f"{done} of {n} jobs succeeded.")
        if body == "bump":
            (total,) = self._sql(f"SELECT sum(n)::bigint FROM {COUNTER_TABLE}")[0]
            if total != n:
                raise BenchmarkError(f"The counters add up to {total}, not {n}.")
        return {
            "rate": n / window,
            "window_s": window,
            "wall_s": wall,
            "wall_rate": n / wall,
            "workers_used": used,
        }

    def measure_drain(self) -> None:
        n = self.sizes["drain"]
        runs: dict[str, dict[str, float]] = {}
        # Queue and raw runs alternate, so that a slow spell of the machine does not
        # land on one side only; with --repeat, each keeps its fastest run.
        for _ in range(self.options.repeat):
            for body, counts in (("noop", (1, 2)), ("bump", (1,))):
                for workers in counts:
                    for side in ("queue", "raw"):
                        self.log(f"drain: {n} {body} jobs, {workers} {side} process(es)")
                        key = f"{body}_{workers}_{side}"
                        run = self.drain(workers=workers, body=body, raw=side == "raw")
                        if key not in runs or run["rate"] > runs[key]["rate"]:
                            runs[key] = run
        self.details["drain"] = runs
        for body, workers, target, what in (
            ("noop", 1, None, "no-op"),
            ("noop", 2, 0.6, "no-op"),
            ("bump", 1, None, "1-row UPDATE"),
        ):
            self._ratio_figure(
                f"drain_{body}_{workers}",
                f"drain: {n} {what} jobs, {workers} worker{'s' if workers > 1 else ''}",
                runs[f"{body}_{workers}_queue"]["rate"],
                runs[f"{body}_{workers}_raw"]["rate"],
                target,
            )

    # -- 3. commit-to-start latency -------------------------------------------------------

    def latency(self, raw: bool) -> dict[str, list[float]]:
        """Milliseconds from the scheduling COMMIT to the claim, for jobs at ``--rate``/s.

        The COMMIT happens between two ``clock_timestamp()`` reads: ``upper`` counts
        from the transaction's last statement (so it includes the COMMIT itself),
        ``lower`` from a SELECT sent with the COMMIT in one query string, so that
        no client round trip (and no wait of this process for a CPU) separates
        them. The worker is notified once the COMMIT is durable, which makes
        ``lower`` the close estimate; the table reports it.
        """
        from django.db import connection, transaction

        from async_queue import Job, schedule

        n = self.sizes["latency"]
        self.reset()
        if raw:
            process = self.spawn_raw("noop", listen=True, max_jobs=n + 1)
        else:
            process = self.spawn_worker("--forever", "--sleep", "30", "--jobs", str(n + 1))
        with transaction.atomic():
            schedule(noop)  # warm-up: the worker is up, has run a job and LISTENs
        self.wait_until(lambda: self.succeeded() == 1, 60, "the warm-up job")
        time.sleep(0.5)
        stamps: dict[int, tuple[Any, Any]] = {}
        interval = 1 / self.options.rate
        start = time.monotonic()
        with connection.cursor() as cursor:
            for i in range(n):
                time.sleep(max(0.0, start + i * interval - time.monotonic()))
                with transaction.atomic():
                    job = schedule(noop, on_commit=False)
                    cursor.execute("SELECT clock_timestamp()")
                    before = cursor.fetchone()[0]
                    # Commits here; the atomic block's own COMMIT then finds no
                    # transaction open and sends nothing.
                    cursor.execute("COMMIT; SELECT clock_timestamp()")
                    cursor.nextset()
                    after = cursor.fetchone()[0]
                stamps[job.pk] = (before, after)
        self.wait([process], timeout=60)
        started = dict(Job.objects.filter(pk__in=stamps).values_list("pk", "started_at"))
        if len(started) != n or None in started.values():
            raise BenchmarkError("Not every latency job was started.")
        return {
            bound: [(started[pk] - pair[i]).total_seconds() * 1000 for pk, pair in stamps.items()]
            for i, bound in enumerate(("upper", "lower"))
        }

    def measure_latency(self) -> None:
        n = self.sizes["latency"]
        self.log(f"latency: {n} jobs at {self.options.rate:g}/s, flush_queue --forever")
        queue = self.latency(raw=False)
        self.log(f"latency: {n} jobs at {self.options.rate:g}/s, raw LISTEN loop")
        raw = self.latency(raw=True)
        self.details["latency_ms"] = {
            f"{side} {bound}": {
                "min": min(values),
                "median": statistics.median(values),
                "p99": percentile(values, 0.99),
                "max": max(values),
            }
            for side, bounds in (("queue", queue), ("raw", raw))
            for bound, values in bounds.items()
        }
        for key, label, pick, limit in (
            ("latency_median", "median", statistics.median, 3.0),
            ("latency_p99", "p99", lambda v: percentile(v, 0.99), 10.0),
        ):
            value = pick(queue["lower"])
            self.figures.append(
                Figure(
                    key,
                    f"commit-to-start latency {label}, {n} jobs, 1 idle worker",
                    "ms",
                    value,
                    pick(raw["lower"]),
                    f"<= {limit:g} ms",
                    value <= limit,
                )
            )

    # -- 4. connection reuse --------------------------------------------------------------

    def measure_connections(self) -> None:
        from django.db import connection

        from async_queue import Job

        n = self.sizes["connection"]
        self.log(f"connections: {n} jobs returning pg_backend_pid(), CONN_MAX_AGE=0")
        self.reset()
        self.enqueue([(backend_pid, None, None)] * n)
        self.wait([self.spawn_worker()], timeout=120)
        pids = set(Job.objects.succeeded().values_list("result", flat=True))
        if Job.objects.succeeded().count() != n:
            raise BenchmarkError("Not every backend_pid job succeeded.")
        self.details["connections"] = {
            "conn_max_age": connection.settings_dict["CONN_MAX_AGE"],
            "jobs": n,
            "backend_pids": sorted(pids),
        }
        self.figures.append(
            Figure(
                "connections",
                f"DB connections used by 1 worker over {n} jobs (CONN_MAX_AGE=0)",
                "connections",
                len(pids),
                1,
                "= 1",
                len(pids) == 1,
            )
        )

    # -- 5. memory ------------------------------------------------------------------------

    def measure_memory(self) -> None:
        n = self.sizes["memory"]
        self.log(f"memory: worker RSS over {n} no-op jobs")
        self.reset()
        self.enqueue([(noop, None, None)] * n)
        process = self.spawn_worker("--forever", "--sleep", "30")
        first = max(1, min(100, n // 10))
        start_kb = start_done = None
        started = time.monotonic()
        while (done := self.succeeded()) < n:
            if process.poll() is not None:
                self.wait([process], 0)
            if start_kb is None and done >= first:
                start_kb, start_done = read_status_kb(process.pid, "VmRSS"), done
            if time.monotonic() - started > 600 + n / 20:
                raise BenchmarkError(f"Only {done} of {n} jobs ran.")
            time.sleep(0.005 if start_kb is None else 0.25)
        end_kb = read_status_kb(process.pid, "VmRSS")
        peak_kb = read_status_kb(process.pid, "VmHWM")
        process.send_signal(signal.SIGTERM)
        self.wait([process], timeout=30)
        assert start_kb is not None
        (window,) = self._sql(
            "SELECT EXTRACT(EPOCH FROM max(finished_at) - min(started_at))::float8 "
            "FROM async_queue_job"
        )[0]
        growth = (end_kb - start_kb) / 1024
        self.details["memory"] = {
            "jobs": n,
            "start_mb": start_kb / 1024,
            "start_after_jobs": start_done,
            "end_mb": end_kb / 1024,
            "peak_mb": peak_kb / 1024,
            "growth_mb": growth,
            "rate": n / window,
        }
        self.figures.append(
            Figure(
                "rss_growth",
                f"worker RSS growth over {n} jobs (end - start)",
                "MB",
                growth,
                None,
                "< 10 MB",
                growth < 10,
            )
        )

    # -- the whole run --------------------------------------------------------------------

    def _ratio_figure(
        self, key: str, label: str, queue: float, raw: float, target: float | None
    ) -> None:
        ratio = queue / raw
        self.figures.append(
            Figure(
                key,
                label,
                "jobs/s",
                queue,
                raw,
                "-" if target is None else f"ratio >= {target:g}",
                None if target is None else ratio >= target,
            )
        )

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            self.setup()
            self.capture()
            self.measure_enqueue()
            self.measure_drain()
            self.measure_latency()
            self.measure_connections()
            self.measure_memory()
        finally:
            self.teardown()
        return {
            "database": self.database,
            "scale": self.options.scale,
            "raw_binding": self.options.raw_binding,
            "repeat": self.options.repeat,
            "sizes": self.sizes,
            "seconds": time.monotonic() - started,
            "figures": [figure.as_dict() for figure in self.figures],
            "missed": [figure.key for figure in self.figures if figure.passed is False],
            "details": self.details,
        }


def _template(params: Sequence[Any], values: dict[str, Any]) -> list[dict[str, Any]]:
    """Parameters of a captured statement, the probe job's own values named as slots."""
    template: list[dict[str, Any]] = []
    for param in params:
        slot = next(
            (
                name
                for name, value in values.items()
                if type(param) is not bool and isinstance(param, type(value)) and param == value
            ),
            None,
        )
        if slot is not None:
            template.append({"slot": slot})
        elif param is None or isinstance(param, bool):
            template.append({"value": param})
        elif isinstance(param, int | str):
            template.append({"value": int(param) if isinstance(param, int) else str(param)})
        else:
            raise BenchmarkError(f"Cannot replay a {type(param).__name__} parameter: {param!r}")
    return template


# -- output -------------------------------------------------------------------------------


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "MB":
        return f"{value:+.1f}"
    if unit == "ms":
        return f"{value:.2f}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def render(results: dict[str, Any]) -> str:
    """The table of figures, then the details that explain them."""
    header = ("figure", "unit", "queue", "raw", "queue/raw", "target", "result")
    rows = [
        (
            figure["label"],
            figure["unit"],
            _number(figure["queue"], figure["unit"]),
            _number(figure["raw"], figure["unit"]),
            "-" if figure["ratio"] is None else f"{figure['ratio']:.2f}",
            figure["target"],
            {True: "pass", False: "MISSED", None: "-"}[figure["passed"]],
        )
        for figure in results["figures"]
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            str(cell).ljust(width) if i in (0, 1, 5) else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    details = results["details"]
    out = [line(header), line(["-" * w for w in widths]), *map(line, rows), ""]
    out.append("details:")
    for name, run in details.get("drain", {}).items():
        out.append(
            f"  drain {name:<12} {run['rate']:>8,.0f} jobs/s over {run['window_s']:.2f}s "
            f"(first claim -> last completion); wall incl. start-up {run['wall_s']:.2f}s = "
            f"{run['wall_rate']:,.0f} jobs/s; {run['workers_used']} worker id(s)"
        )
    for figure in results["figures"]:
        if figure["unit"] == "jobs/s":
            queue_us, raw_us = 1e6 / figure["queue"], 1e6 / figure["raw"]
            out.append(
                f"  {figure['key']:<18} per job: queue {queue_us:,.0f} us, raw {raw_us:,.0f} us, "
                f"queue overhead {queue_us - raw_us:+,.0f} us"
            )
    for name, stats in details.get("latency_ms", {}).items():
        out.append(
            f"  latency {name:<11} ms: min {stats['min']:.2f}  median {stats['median']:.2f}  "
            f"p99 {stats['p99']:.2f}  max {stats['max']:.2f}"
        )
    if "latency_ms" in details:
        out.append(
            "    (lower: from clock_timestamp() read right after COMMIT, in the same query "
            "string: the table's figure; upper: read before COMMIT, so COMMIT included)"
        )
    if memory := details.get("memory"):
        out.append(
            f"  memory: RSS {memory['start_mb']:.1f} MB after {memory['start_after_jobs']} jobs, "
            f"{memory['end_mb']:.1f} MB after {memory['jobs']}, peak {memory['peak_mb']:.1f} MB; "
            f"{memory['rate']:,.0f} jobs/s"
        )
    if connections := details.get("connections"):
        out.append(f"  connections: backend pids seen by jobs {connections['backend_pids']}")
    out.append(
        f"  statements per job (worker, excluding BEGIN/COMMIT): {details['statements_per_job']}; "
        f"rows written by schedule_many and raw INSERT identical: "
        f"{details['enqueue_rows_identical']}; raw psycopg binding: {results['raw_binding']}"
    )
    missed = results["missed"]
    out.append(f"  total {results['seconds']:.1f}s; sizes {results['sizes']}")
    out.append(f"missed targets: {', '.join(missed)}" if missed else "all targets met")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.queue", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help="Database to create and drop (its name must contain 'bench').",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the database at the end.")
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every job count.")
    parser.add_argument(
        "--jobs-memory", type=int, metavar="N", help="Jobs of the memory run (default 50,000)."
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="Jobs per second of the latency runs."
    )
    parser.add_argument(
        "--raw-binding",
        choices=("server", "client"),
        default="server",
        help="Raw loops' psycopg parameters: server-side (psycopg's default, prepared after "
        "5 runs) or client-side (Django's default, never prepared).",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="Run each drain N times and keep the fastest."
    )
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    parser.add_argument("--quiet", action="store_true", help="No progress on stderr.")
    parser.add_argument("--raw-worker", metavar="SPEC", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.raw_worker is None:
        if "bench" not in options.database:
            parser.error("--database must name a database containing 'bench' (it is dropped).")
        if options.scale <= 0 or options.rate <= 0 or options.repeat < 1:
            parser.error("--scale, --rate and --repeat must be positive.")
        if options.jobs_memory is not None and options.jobs_memory < 10:
            parser.error("--jobs-memory must be at least 10.")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    require_entry_point()
    options = parse_args(argv)
    if options.raw_worker is not None:
        raw_worker(json.loads(options.raw_worker))
        return 0
    try:
        results = Benchmark(options).run()
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2, default=str) if options.json else render(results))
    return 0


if __name__ == "__main__":
    # Run the copy of this module imported under its real name, so that the job
    # functions scheduled here are the ones a worker imports (not __main__.noop).
    from benchmarks.queue import main as _main

    sys.exit(_main())
