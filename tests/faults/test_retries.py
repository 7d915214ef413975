"""Row 4: retry gaps follow the documented formula with jitter and never exceed the cap.

    c(n) = min(BACKOFF_MAX, BACKOFF_BASE * BACKOFF_FACTOR ** (n - 1)), delay in [c/2, c]

Property tests (Hypothesis) on ``async_queue.retries`` for any settings and any
attempt up to 1,000 (no overflow), then the delays a real worker writes into
``run_after`` of a failing job, read back by the job's next attempt.
"""

from __future__ import annotations

import itertools
import math
import random
from datetime import datetime

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from async_queue import Job, JobError, schedule
from async_queue.retries import retry_ceiling, retry_delay
from tests.conftest import child_env, wait_for
from tests.faults.conftest import Ledger, report, size

EXAMPLES = settings(max_examples=size(300, 5000), deadline=None)
bases = st.floats(min_value=0.001, max_value=10_000)
factors = st.floats(min_value=0.5, max_value=100)
caps = st.floats(min_value=0.001, max_value=10_000_000)
attempts = st.integers(min_value=1, max_value=1_000)


def backoff(base: float, factor: float, cap: float) -> override_settings:
    return override_settings(
        ASYNC_QUEUE={"BACKOFF_BASE": base, "BACKOFF_FACTOR": factor, "BACKOFF_MAX": cap}
    )


def documented_ceiling(base: float, factor: float, cap: float, attempt: int) -> float:
    """The README's formula, computed naively (an overflow means "beyond any cap")."""
    try:
        raw = base * factor ** (attempt - 1)
    except OverflowError:
        raw = math.inf
    return min(cap, raw)


@EXAMPLES
@given(base=bases, factor=factors, cap=caps, attempt=attempts)
def test_the_ceiling_is_the_documented_formula_and_never_overflows(base, factor, cap, attempt):
    """Row 4: c(n) as documented, finite and at most the cap, for attempts up to 1,000."""
    with backoff(base, factor, cap):
        ceiling = retry_ceiling(attempt)
    assert math.isfinite(ceiling)
    assert 0 <= ceiling <= cap
    assert math.isclose(ceiling, documented_ceiling(base, factor, cap, attempt), rel_tol=1e-9)


@EXAMPLES
@given(base=bases, factor=factors, cap=caps, attempt=attempts, seed=st.integers())
def test_every_delay_is_jittered_within_the_upper_half_of_the_ceiling(
    base, factor, cap, attempt, seed
):
    """Row 4: each delay lies in [c/2, c], so never above the cap."""
    with backoff(base, factor, cap):
        ceiling = retry_ceiling(attempt)
        delay = retry_delay(attempt, random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling <= cap


@EXAMPLES
@given(base=bases, factor=st.floats(min_value=1, max_value=100), cap=caps)
def test_gaps_grow_until_the_cap_and_stay_there_over_1000_attempts(base, factor, cap):
    """Row 4: with a growing factor the ceilings never shrink, and the cap is where they end."""
    with backoff(base, factor, cap):
        ceilings = [retry_ceiling(n) for n in range(1, 1001)]
    assert all(a <= b for a, b in itertools.pairwise(ceilings))
    assert ceilings[-1] == documented_ceiling(base, factor, cap, 1000)
    if factor >= 1.1:
        assert ceilings[-1] == cap


@EXAMPLES
@given(
    base=bases,
    factor=st.floats(min_value=1, max_value=100),
    cap=caps,
    attempt=attempts,
    seed=st.integers(),
)
def test_jitter_spreads_retries_over_the_whole_upper_half(base, factor, cap, attempt, seed):
    """Row 4: jobs that failed together do not retry together."""
    rng = random.Random(seed)
    with backoff(base, factor, cap):
        ceiling = retry_ceiling(attempt)
        delays = [retry_delay(attempt, rng) for _ in range(100)]
    assert len(set(delays)) > 90
    assert min(delays) < ceiling * 0.6
    assert max(delays) > ceiling * 0.9


RETRY_SETTINGS = """\
from tests.settings import *  # noqa: F403

ASYNC_QUEUE = {{**ASYNC_QUEUE, "BACKOFF_BASE": {base}, "BACKOFF_FACTOR": 2.0, "BACKOFF_MAX": {cap}}}
"""


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_writes_run_after_by_the_formula_up_to_attempt_1000(
    start_worker, ledger: Ledger, tmp_path
):
    """Row 4: the ``run_after`` a worker writes after each failed attempt is within
    [c/2, c] of the failure (database clock), a retry never starts before it, and a job
    at its 1,000th attempt is retried after at most the cap.
    """
    base, cap = size(0.05, 0.1), size(0.4, 2.0)
    attempts_each = size(7, 10)
    (tmp_path / "retry_settings.py").write_text(RETRY_SETTINGS.format(base=base, cap=cap))
    env = {
        **ledger.env,
        "DJANGO_SETTINGS_MODULE": "retry_settings",
        "PYTHONPATH": f"{tmp_path}:{child_env()['PYTHONPATH']}",
    }
    name = "tests.faultapp.jobs_mechanics.fail_logging_schedule"
    young = schedule(name, max_attempts=attempts_each)
    old = schedule(name, max_attempts=1001)
    Job.objects.filter(pk=old.pk).update(attempts=998)  # its next claims: 999, 1000, 1001
    worker = start_worker("--forever", "--sleep", "0.02", env=env)
    wait_for(
        lambda: Job.objects.filter(pk__in=[young.pk, old.pk], status="failed").count() == 2,
        timeout=size(30, 120),
    )
    worker.kill()

    gaps = []
    with backoff(base, 2.0, cap):
        for job in (young, old):
            failed_at = {e.attempt: e.created_at for e in JobError.objects.filter(job=job)}
            logged = [line for line in ledger.lines("attempt") if int(line[1]) == job.pk]
            for _, _, _, attempt, run_after, started_at in logged:
                attempt = int(attempt)
                if attempt - 1 not in failed_at:
                    continue  # the first attempt (or the forged 999th) follows no failure
                ceiling = retry_ceiling(attempt - 1)
                delay = (parse(run_after) - failed_at[attempt - 1]).total_seconds()
                # run_after = (failure update's clock) + delay; the JobError row is written
                # a statement later, so the measured gap can only be a little short.
                assert ceiling / 2 - 0.05 <= delay <= ceiling + 0.002, (attempt, delay, ceiling)
                assert parse(started_at) >= parse(run_after)
                gaps.append((attempt - 1, round(delay, 3), ceiling))
    assert len(gaps) == (attempts_each - 1) + 2
    assert max(delay for _, delay, _ in gaps) <= cap + 0.002
    assert [attempt for attempt, _, _ in gaps][-2:] == [999, 1000]
    report(
        4,
        "retries",
        hypothesis_examples_per_property=EXAMPLES.max_examples,
        base_s=base,
        cap_s=cap,
        worker_gaps=[f"{a}:{d}/{c:g}" for a, d, c in gaps],
    )
