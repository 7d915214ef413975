"""Throughput, latency, connection and memory figures of async_queue on PostgreSQL.

    PYTHONPATH=. python -m benchmarks.queue [--scale 0.1] [--json] [--keep]

Every figure is measured next to a raw baseline in the same run: psycopg without
Django, running the SQL the queue runs. The claim and the fenced completion are
captured from a real ``Worker`` run (``connection.execute_wrapper``), not copied
by hand, so the baseline follows the queue when its SQL changes. Queue workers
are real ``flush_queue`` subprocesses; the raw loops are subprocesses of this
command (``--raw-worker``, ``benchmarks.raw``) that import psycopg only, which
is why the package imports Django inside the functions that need it.

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
import json
import sys
from collections.abc import Sequence

from .harness import BenchmarkError
from .measurements import Benchmark
from .raw import raw_worker, require_entry_point
from .report import render

DEFAULT_DATABASE = "async_queue_bench"


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
    sys.exit(main())
