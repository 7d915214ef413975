"""The figures of a run and the table that prints them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


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
