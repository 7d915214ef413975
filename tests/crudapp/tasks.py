"""Job functions powercrud's tests schedule (locks are declared by the caller)."""

from __future__ import annotations

import time

from async_queue import job


@job
def work_slowly(steps: int = 20, delay: float = 0.25) -> int:
    """Hold the declared objects for ``steps * delay`` seconds, reporting progress."""
    from async_queue import report_progress

    for step in range(1, steps + 1):
        time.sleep(delay)
        report_progress(step, steps, f"step {step} of {steps}")
    return steps
