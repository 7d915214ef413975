"""Job functions the tracker's end-to-end tests schedule."""

from async_queue import job


@job
def add(a: int, b: int) -> int:
    return a + b


@job
def fail(message: str = "boom") -> None:
    raise RuntimeError(message)


@job
def count_to(n: int) -> int:
    """Report progress at every step, from inside the job's transaction."""
    from async_queue.progress import report_progress

    for step in range(1, n + 1):
        report_progress(step, n, f"step {step}")
    return n
