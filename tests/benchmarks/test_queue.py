"""``python -m benchmarks.queue`` runs end to end and reports every figure.

Timings vary too much between machines to assert targets here; the test checks
that each figure was measured (positive numbers, next to its raw baseline) and
that the benchmark leaves no database behind.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from benchmarks.queue import main
from benchmarks.report import render

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {
    "enqueue_many",
    "enqueue_single",
    "drain_noop_1",
    "drain_noop_2",
    "drain_bump_1",
    "latency_median",
    "latency_p99",
    "connections",
    "rss_growth",
}


def run_benchmark(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "TMPDIR": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.queue", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def database_exists(name: str) -> bool:
    with psycopg.connect(
        host=os.environ.get("ASYNC_QUEUE_PG_HOST", "127.0.0.1"),
        port=os.environ.get("ASYNC_QUEUE_PG_PORT", "5432"),
        user=os.environ.get("ASYNC_QUEUE_PG_USER", "postgres"),
        password=os.environ.get("ASYNC_QUEUE_PG_PASSWORD", ""),
        dbname="postgres",
    ) as connection:
        return bool(
            connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        )


@pytest.mark.postgres
def test_small_run_measures_every_figure(tmp_path):
    database = f"async_queue_bench_test_{os.getpid()}"
    result = run_benchmark(
        tmp_path, "--scale", "0.02", "--jobs-memory", "300", "--json", "--database", database
    )
    assert result.returncode == 0, result.stderr

    results = json.loads(result.stdout)
    figures = {figure["key"]: figure for figure in results["figures"]}
    assert set(figures) == FIGURES
    for key, figure in figures.items():
        assert math.isfinite(figure["queue"]), key
        assert figure["passed"] in (True, False, None), key
        if key == "rss_growth":
            continue
        assert figure["queue"] > 0, key
        assert figure["raw"] > 0, key
        assert figure["ratio"] == pytest.approx(figure["queue"] / figure["raw"]), key
    assert set(results["missed"]) <= FIGURES

    details = results["details"]
    assert details["statements_per_job"] >= 2
    assert details["enqueue_rows_identical"] is True
    assert all(run["rate"] > 0 and run["wall_s"] > 0 for run in details["drain"].values())
    assert details["drain"]["noop_2_queue"]["workers_used"] == 2
    assert details["connections"]["backend_pids"]
    memory = details["memory"]
    assert memory["jobs"] == 300
    assert memory["start_mb"] > 0
    assert memory["end_mb"] > 0
    assert list(tmp_path.iterdir()) == []  # worker logs cleaned up
    assert not database_exists(database)


def test_refuses_a_database_not_named_for_benchmarks(tmp_path):
    result = run_benchmark(tmp_path, "--database", "async_queue", timeout=30)
    assert result.returncode == 2
    assert "must name a database containing 'bench'" in result.stderr


def test_table_names_missed_targets():
    figure = {
        "key": "drain_noop_2",
        "label": "drain: 10 no-op jobs, 2 workers",
        "unit": "jobs/s",
        "queue": 500.0,
        "raw": 1000.0,
        "ratio": 0.5,
        "target": "ratio >= 0.6",
        "passed": False,
    }
    table = render(
        {
            "figures": [figure],
            "missed": ["drain_noop_2"],
            "details": {"statements_per_job": 2, "enqueue_rows_identical": True},
            "raw_binding": "server",
            "seconds": 1.0,
            "sizes": {},
        }
    )
    assert "MISSED" in table
    assert "0.50" in table
    assert table.endswith("missed targets: drain_noop_2")


def test_runs_only_as_the_entry_point():
    # A job row naming benchmarks.queue.main must not reach the database code.
    with pytest.raises(RuntimeError, match="runs only as"):
        main(["--database", "async_queue_bench_forged"])
