"""The five measurements, each a queue run next to its raw baseline.

Before them, ``capture`` runs one job through a real ``Worker`` and records the
claim and completion statements the raw loops replay.
"""

from __future__ import annotations

import argparse
import math
import signal
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from .harness import BenchmarkError, Harness, read_status_kb
from .jobs import COUNTER_ROWS, COUNTER_TABLE, backend_pid, bump, noop
from .raw import COMPARED_COLUMNS, MAX_PARAMS, insert_row, insert_sql
from .report import Figure, percentile

PROBE_WORKER = "bench-probe"
BASE_SIZES = {
    "enqueue_many": 5000,
    "enqueue_single": 1000,
    "drain": 5000,
    "latency": 200,
    "connection": 200,
    "memory": 50000,
}


class Benchmark(Harness):
    """One run: create the database, measure every figure, drop the database."""

    def __init__(self, options: argparse.Namespace) -> None:
        super().__init__(options)
        self.sizes = {
            name: max(10, round(base * options.scale)) for name, base in BASE_SIZES.items()
        }
        if options.jobs_memory is not None:
            self.sizes["memory"] = options.jobs_memory
        self.figures: list[Figure] = []
        self.details: dict[str, Any] = {}

    # -- the SQL the worker runs ------------------------------------------------------

    def capture(self) -> None:
        """Record the worker's claim and completion statements from one real job run."""
        from django.db import connection, transaction

        from async_queue import Job, Status, schedule_many
        from async_queue.sql import CHANNEL
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
        row = insert_row()
        per_statement = MAX_PARAMS // len(row)

        self.log(f"enqueue: schedule_many({many}) vs raw multi-row INSERT")

        def queue_many() -> None:
            with transaction.atomic():
                schedule_many([(noop, None, None)] * many)

        def raw_many() -> None:
            with raw.transaction():
                for start in range(0, many, per_statement):
                    rows = min(per_statement, many - start)
                    cursor.execute(insert_sql(rows), row * rows)
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
        insert_one = insert_sql(1)

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
