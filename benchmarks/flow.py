"""What flow control costs the claim, on PostgreSQL, measured against a baseline in one run.

    PYTHONPATH=. python -m benchmarks.flow [--jobs 20000] [--claims 2000] [--rounds 5]

The queue's claim (with its concurrency and rate predicates and the rate CTE) is
timed against the claim as it was before flow control existed (the same UPDATE
without them, kept here as the baseline), on the same table, alternating rounds,
each claim followed by the fenced completion a worker runs. Then jobs that do
have a concurrency key and a rate (limits high enough never to bite) are claimed,
so the figure also says what a limited job costs. It prints medians and ratios
and drops its database ("...bench..." only) at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence

BASELINE = (
    "UPDATE async_queue_job SET status = 'running', attempts = attempts + 1, "
    "started_at = STATEMENT_TIMESTAMP(), finished_at = NULL, worker = %s "
    "WHERE id = (SELECT id FROM async_queue_job WHERE status = 'queued' "
    "AND run_after <= STATEMENT_TIMESTAMP() AND (NOT waits_for_group OR NOT EXISTS "
    "(SELECT 1 FROM async_queue_job AS sibling WHERE sibling.group_id = "
    "async_queue_job.group_id AND sibling.id <> async_queue_job.id "
    "AND sibling.status IN ('queued', 'running'))) "
    "ORDER BY priority DESC, run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "AND status = 'queued' RETURNING "
)
COMPLETE = "UPDATE async_queue_job SET status = 'succeeded', finished_at = NOW() WHERE id = %s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="async_queue_flow_bench")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--claims", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--explain", action="store_true")
    options = parser.parse_args(argv)
    if "bench" not in options.database:
        parser.error("--database must contain 'bench': the benchmark drops it at the end.")
    os.environ["ASYNC_QUEUE_BENCH_DB_NAME"] = options.database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    from django.test.utils import get_runner  # noqa: F401 (settings loaded)

    from async_queue.models import Job
    from async_queue.sql import dialect
    from async_queue.sql.claims import claim_params, claim_sql

    creation = connection.creation
    test_name = creation._get_test_db_name()
    creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        call_command("migrate", verbosity=0)
        sql = dialect("default")

        def fill(limited: bool) -> None:
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE async_queue_job CASCADE; TRUNCATE async_queue_ratecount")
                extra = (
                    ", concurrency_key, concurrency, rate_key, rate_limit, rate_period"
                    if limited
                    else ""
                )
                values = (
                    ", 'k' || (g %% 50), 1000000, 'r' || (g %% 50), 1000000, 3600"
                    if limited
                    else ""
                )
                cursor.execute(
                    "INSERT INTO async_queue_job (name, args, kwargs, meta, queue, priority, "
                    "status, attempts, max_attempts, worker, last_error, tracker, waits_for_group, "
                    f"has_locks, progress_message{extra}) SELECT 'bench.noop', '[]', '{{}}', "
                    "'{}', 'default', 0, 'queued', 0, 5, '', '', '', false, false, ''"
                    f"{values} FROM generate_series(1, %s) AS g",
                    [options.jobs],
                )
                cursor.execute("ANALYZE async_queue_job")

        def queue_claims() -> float:
            started = time.perf_counter()
            for _ in range(options.claims):
                job = sql.claim("bench")
                with connection.cursor() as cursor:
                    cursor.execute(COMPLETE, [job.pk])
            return (time.perf_counter() - started) / options.claims

        # Every column, turned into a Job, as the queue's claim returns it.
        columns = ", ".join(
            connection.ops.quote_name(field.column) for field in Job._meta.concrete_fields
        )

        def baseline_claims() -> float:
            started = time.perf_counter()
            for _ in range(options.claims):
                with connection.cursor() as cursor:
                    cursor.execute(BASELINE + columns, ["bench"])
                    job = sql.job_from_row(cursor.fetchone())
                    cursor.execute(COMPLETE, [job.pk])
            return (time.perf_counter() - started) / options.claims

        if options.explain:
            fill(False)
            text, names = claim_sql(sql.claim_shape(False, 0, False))
            queue_sql = (text, claim_params(names, "bench", None, (), ""))
            for label, text, params in (
                ("baseline", BASELINE + columns, ["bench"]),
                ("queue", *queue_sql),
            ):
                with connection.cursor() as cursor:
                    cursor.execute("BEGIN")
                    cursor.execute("EXPLAIN (ANALYZE, SUMMARY) " + text, params)
                    lines = [row[0] for row in cursor.fetchall()]
                    cursor.execute("ROLLBACK")
                print(label, *lines, sep="\n")
        rounds: dict[str, list[float]] = {"baseline": [], "queue": [], "limited": []}
        for _ in range(options.rounds):
            fill(False)
            rounds["baseline"].append(baseline_claims())
            fill(False)
            rounds["queue"].append(queue_claims())
            fill(True)
            rounds["limited"].append(queue_claims())
        medians = {name: statistics.median(times) for name, times in rounds.items()}
        for name, seconds in medians.items():
            print(f"{name:>9}: {seconds * 1e6:8.0f} us per claim + completion (median)")
        print(f"unlimited / baseline: {medians['queue'] / medians['baseline']:.3f}")
        print(f"  limited / baseline: {medians['limited'] / medians['baseline']:.3f}")
    finally:
        connection.close()
        creation.destroy_test_db(test_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
