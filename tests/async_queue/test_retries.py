import random

import pytest
from django.test import override_settings

from async_queue.retries import retry_ceiling, retry_delay


@override_settings(ASYNC_QUEUE={"BACKOFF_BASE": 2, "BACKOFF_FACTOR": 2, "BACKOFF_MAX": 60})
def test_ceiling_doubles_from_the_base_up_to_the_cap():
    assert [retry_ceiling(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


@override_settings(ASYNC_QUEUE={"BACKOFF_BASE": 2, "BACKOFF_FACTOR": 2, "BACKOFF_MAX": 60})
@pytest.mark.parametrize("attempt", [1, 2, 5, 6, 100, 1_000, 10**6])
def test_delay_is_jittered_within_the_upper_half_and_never_over_the_cap(attempt):
    rng = random.Random(attempt)
    delays = [retry_delay(attempt, rng) for _ in range(200)]
    ceiling = retry_ceiling(attempt)
    assert all(ceiling / 2 <= d <= ceiling <= 60 for d in delays)
    assert len(set(delays)) > 100  # jittered, not constant


@override_settings(ASYNC_QUEUE={})
def test_documented_defaults():
    assert retry_ceiling(1) == 2.0
    assert retry_ceiling(10**9) == 3600.0
