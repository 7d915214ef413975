"""How long a failed job waits before its next attempt: exponential backoff with jitter.

    delay(n) = uniform(c * (1 - jitter), c)
    c = min(max, base * factor ** (n - 1))

where ``n`` is the attempt that just failed (1 for the first). The jitter spreads
retries of jobs that failed together; the cap holds for any ``n``, however large.
``Exponential()`` takes each parameter left as None from the settings
(``BACKOFF_BASE``, ``BACKOFF_FACTOR``, ``BACKOFF_MAX``; jitter 0.5).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from .conf import queue_settings

DEFAULT_JITTER = 0.5


@dataclass(frozen=True)
class Exponential:
    """Exponential backoff with jitter; ``@job(backoff=Exponential(base=1, max=60))``."""

    base: float | None = None
    factor: float | None = None
    max: float | None = None
    jitter: float | None = None

    def __post_init__(self) -> None:
        for name in ("base", "factor", "max", "jitter"):
            value = getattr(self, name)
            if value is None:
                continue
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"Exponential({name}={value!r}): give a finite number of at least 0."
                )
        if self.jitter is not None and self.jitter > 1:
            raise ValueError(f"Exponential(jitter={self.jitter!r}): give a fraction from 0 to 1.")

    def resolved(self) -> tuple[float, float, float, float]:
        """(base, factor, max, jitter), the settings filled in for those left as None."""
        return (
            float(queue_settings.BACKOFF_BASE if self.base is None else self.base),
            float(queue_settings.BACKOFF_FACTOR if self.factor is None else self.factor),
            float(queue_settings.BACKOFF_MAX if self.max is None else self.max),
            DEFAULT_JITTER if self.jitter is None else float(self.jitter),
        )

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay after failed attempt ``attempt`` (1-based)."""
        base, factor, cap, _ = self.resolved()
        exponent = max(attempt - 1, 0)
        if base <= 0 or cap <= 0:
            return 0.0
        if factor <= 1:
            return min(cap, base * factor**exponent)
        # Compare logarithms so that 2.0 ** 10_000 never overflows.
        if exponent * math.log(factor) >= math.log(cap / base):
            return cap
        return min(cap, base * factor**exponent)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt``: the ceiling, jittered down."""
        ceiling = self.ceiling(attempt)
        jitter = self.resolved()[3]
        return (rng or random).uniform(ceiling * (1 - jitter), ceiling)

    def as_data(self) -> dict[str, Any]:
        """The parameters given (for a job row's JSON)."""
        return {key: value for key, value in vars(self).items() if value is not None}

    def __str__(self) -> str:
        base, factor, cap, jitter = self.resolved()
        return (
            f"exponential: {base:g}s x{factor:g} per attempt, at most {cap:g}s, jitter {jitter:.0%}"
        )


def retry_ceiling(attempt: int) -> float:
    """The settings' backoff ceiling after failed attempt ``attempt`` (1-based)."""
    return Exponential().ceiling(attempt)


def retry_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt``, by the settings' backoff."""
    return Exponential().delay(attempt, rng)
