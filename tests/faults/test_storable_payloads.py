"""Row 20: payloads a database cannot store are refused in the caller; a failed hook loses one job.

On PostgreSQL a NUL character or a lone surrogate used to pass ``schedule()``
and then fail the INSERT in the ``on_commit`` hook, after the caller had
committed, taking every later job of the transaction with it. Each value below
is refused at ``schedule()`` time, the same way on both databases, by every way
of scheduling, naming the element; the values just inside each limit are
written and read back unchanged on both. And when a write in the hook fails
anyway (here: the job's user was deleted in the same transaction, so the row's
foreign key fails when the hook commits), only that job is lost, logged at ERROR
with its name: the transaction's other jobs and later hooks are untouched.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import django
import pytest
from django.contrib.auth.models import User
from django.db import transaction

from async_queue import Job, JobLock, ScheduleError, schedule, schedule_many
from async_queue.payloads import INT64, MAX_DEPTH
from tests.faults.conftest import report, size
from tests.faults.test_payloads import FUNCTION, WAYS, nested

pytestmark = pytest.mark.django_db(transaction=True)


def unstorable() -> dict[str, tuple[dict[str, Any], str]]:
    """``{label: (schedule() arguments, text the error must contain)}``."""
    return {
        "NUL in a string": ({"args": ["a\x00b"]}, "args[0] contains a NUL character"),
        "NUL in a nested string": (
            {"kwargs": {"rows": [{"title": "x\x00"}]}},
            "kwargs['rows'][0]['title'] contains a NUL",
        ),
        "NUL in a key": ({"kwargs": {"data": {"k\x00": 1}}}, "kwargs['data'] has a key that"),
        "NUL in meta": ({"meta": {"note": "\x00"}}, "meta['note'] contains a NUL"),
        "a lone surrogate": ({"args": ["\ud800"]}, "args[0] contains a lone surrogate"),
        "a surrogate in a key": ({"kwargs": {"d": {"\udfff": 1}}}, "lone surrogate"),
        "2**63": ({"args": [2**63]}, "does not fit in 64 bits"),
        "-2**63 - 1": ({"kwargs": {"n": -(2**63) - 1}}, "kwargs['n'] = -9223372036854775809"),
        "10**30 in meta": ({"meta": {"big": 10**30}}, "meta['big']"),
        f"{MAX_DEPTH + 1} levels": (
            {"kwargs": {"tree": nested(MAX_DEPTH)}},
            f"nested more than {MAX_DEPTH} levels deep",
        ),
        "500 levels": ({"args": [nested(500)]}, "nested more than"),
    }


def storable_limits() -> dict[str, Any]:
    """Values just inside each limit, with text a database could be picky about."""
    return {
        "ints": [INT64[0], INT64[1], 0, -1],
        "deep": nested(MAX_DEPTH - 2),  # kwargs, then MAX_DEPTH - 1 lists
        "text": "é ☃ 𝄞 \u2028 \ufeff \t \\u0000 \\ud800",
        "keys": {"é": 1, "𝄞": 2, "": 3},
        "floats": [0.1, -2.5e-300, 12345.678],
    }


def test_unstorable_values_are_refused_the_same_way_on_every_database():
    user = User.objects.create_user("payload-owner")
    refused = 0
    slowest = 0.0
    for label, (arguments, expected) in unstorable().items():
        for way, call in WAYS.items():
            started = time.monotonic()
            with pytest.raises(ScheduleError) as caught:
                call(**arguments)
            slowest = max(slowest, time.monotonic() - started)
            assert expected in str(caught.value), f"{label} via {way}: {caught.value}"
            refused += 1
    tasks_refused = 0
    if django.VERSION >= (6, 0):
        from tests.faultapp.jobs_web import django_task

        for arguments, expected in unstorable().values():
            if "kwargs" in arguments:
                with pytest.raises(ScheduleError, match=expected.split("[")[0]):
                    django_task.enqueue(**arguments["kwargs"])
                tasks_refused += 1
    assert Job.objects.count() == 0
    assert JobLock.objects.count() == 0

    # Just inside the limits: written, and read back unchanged, on both databases.
    limits = storable_limits()
    with transaction.atomic():
        job = schedule(FUNCTION, kwargs=limits, user=user)
    stored = Job.objects.get(pk=job.pk)
    assert stored.kwargs == limits
    report(
        20,
        "unstorable payloads",
        values=len(unstorable()),
        ways=len(WAYS),
        refused=refused,
        refused_by_django_tasks=tasks_refused,
        jobs_written=0,
        slowest_refusal_s=round(slowest, 4),
        limits_round_trip=True,
    )


def test_a_hook_that_cannot_write_its_job_loses_only_that_job(caplog):
    count = int(size(1_000, 1_000))
    doomed = User.objects.create_user("doomed")
    later_hook_ran: list[bool] = []
    with caplog.at_level(logging.ERROR, logger="async_queue.scheduling"), transaction.atomic():
        schedule(FUNCTION, kwargs={"counter": "first"})
        lost = schedule(FUNCTION, kwargs={"counter": "lost"}, user=doomed)
        many = schedule_many(
            [
                {"function": FUNCTION, "kwargs": {"counter": f"many-{i}"}}
                | ({"user": doomed} if i == count // 2 else {})
                for i in range(count)
            ]
        )
        schedule(FUNCTION, kwargs={"counter": "last"})
        transaction.on_commit(lambda: later_hook_ran.append(True))
        doomed.delete()  # the rows' user_id now points nowhere: their INSERT fails
    written = set(Job.objects.values_list("kwargs__counter", flat=True))
    assert lost.pk is None
    assert {"first", "last"} <= written
    assert "lost" not in written
    assert len([name for name in written if name.startswith("many-")]) == count - 1
    assert f"many-{count // 2}" not in written
    assert sum(job.pk is not None for job in many) == count - 1
    assert later_hook_ran == [True]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2, [r.getMessage() for r in errors]
    assert all(FUNCTION in r.getMessage() for r in errors)
    report(
        20,
        "a failing on_commit write",
        jobs_in_transaction=count + 3,
        written=Job.objects.count(),
        lost=2,
        error_lines=len(errors),
        later_hook_ran=True,
    )
