"""Jobs of the flow-control fault rows: each logs when its body starts and ends."""

import time

from async_queue import job

from .jobs import log_execution


def _span(key: str, seconds: float) -> None:
    log_execution("enter", time.monotonic_ns(), key)
    time.sleep(seconds)
    log_execution("leave", time.monotonic_ns(), key)


@job(concurrency=3, concurrency_key="tenant:{tenant}")
def per_tenant(tenant: int, seconds: float = 0.02) -> None:
    """At most 3 run at once per tenant."""
    _span(f"tenant:{tenant}", seconds)


@job(queue="limited")
def in_limited_queue(seconds: float = 0.02) -> None:
    """Runs in a queue that the row's settings limit."""
    _span("queue:limited", seconds)


@job(rate="20/s")
def rated() -> None:
    """At most 20 starts per second, across every worker."""
    log_execution("start", time.monotonic_ns(), "rated")
