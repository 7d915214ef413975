"""Job functions of the fault row about stored rows that break pages (row 21)."""

from __future__ import annotations

from async_queue import job

from .jobs import log_execution


@job
def returns_json(size: int) -> str:
    """Return a string whose JSON is exactly ``size`` bytes (its two quotes included)."""
    log_execution("returns", size)
    return "x" * (size - 2)
