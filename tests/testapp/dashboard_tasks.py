"""Job functions the dashboard tests schedule."""

import time

from async_queue import job
from async_queue.progress import report_progress


@job
def count_slowly(steps: int = 40, delay: float = 0.25) -> int:
    """Report progress once per step, ``delay`` seconds apart; return ``steps``."""
    for step in range(steps):
        report_progress(step, steps, f"step {step} of {steps}")
        time.sleep(delay)
    report_progress(steps, steps, "done")
    return steps
