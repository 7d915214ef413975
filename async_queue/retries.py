"""How long a failed job waits before its next attempt.

    delay(n) = uniform(c / 2, c)
    c = min(BACKOFF_MAX, BACKOFF_BASE * BACKOFF_FACTOR ** (n - 1))

where ``n`` is the attempt that just failed (1 for the first). The jitter spreads
retries of jobs that failed together; the cap holds for any ``n``, however large.
"""

from __future__ import annotations

import math
import random

from .conf import queue_settings


def retry_ceiling(attempt: int) -> float:
    """The upper bound of the delay after failed attempt ``attempt`` (1-based)."""
    base = float(queue_settings.BACKOFF_BASE)
    factor = float(queue_settings.BACKOFF_FACTOR)
    cap = float(queue_settings.BACKOFF_MAX)
    exponent = max(attempt - 1, 0)
    if base <= 0 or cap <= 0:
        return 0.0
    if factor <= 1:
        return min(cap, base * factor**exponent)
    # Compare logarithms so that 2.0 ** 10_000 never overflows.
    if exponent * math.log(factor) >= math.log(cap / base):
        return cap
    return min(cap, base * factor**exponent)


def retry_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt``: the ceiling, jittered down by <= half."""
    ceiling = retry_ceiling(attempt)
    return (rng or random).uniform(ceiling / 2, ceiling)
