"""Row 15: bad payloads fail in the caller with a clear ScheduleError, and nothing is written.

Every way of scheduling (``schedule()`` inside and outside a transaction,
``schedule_many()``, ``aschedule()``, the ``django.tasks`` backend) is tried with
each bad payload; none may write a job or a lock row, or let a ``RecursionError``
escape. A source scan proves the packages never deserialize with pickle (or
marshal, shelve and friends), so a forged row cannot execute code through its data.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.db import transaction

from async_queue import Job, JobLock, ScheduleError, aschedule, schedule, schedule_many
from tests.conftest import ROOT
from tests.faults.conftest import report, size

pytestmark = pytest.mark.django_db(transaction=True)

FUNCTION = "tests.faultapp.jobs.ledger"
PACKAGES = ("async_queue", "powercrud")
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"}
UNSAFE_MODULES |= {"jsonpickle", "copyreg", "joblib"}
UNSAFE_NAMES = {"PickleSerializer", "pickle"}


def nested(depth: int) -> list[Any]:
    """``[[[...]]]`` ``depth`` levels deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def bad_payloads(user: User) -> dict[str, tuple[dict[str, Any], str]]:
    """``{label: (schedule() arguments, text the error must contain)}``."""
    megabytes = int(size(10, 10))
    big = "x" * (megabytes * 1024 * 1024)
    deep = nested(int(size(10_000, 10_000)))
    return {
        "10 MB kwargs": ({"kwargs": {"blob": big}}, "over the 1048576-byte limit"),
        "10 MB args": ({"args": [big]}, "MAX_PAYLOAD_BYTES"),
        "10 MB meta": ({"meta": {"blob": big}}, "bytes of JSON"),
        "a set": ({"kwargs": {"tags": {"a", "b"}}}, "kwargs['tags'] cannot be stored as JSON"),
        "a frozenset in args": ({"args": [frozenset({1})]}, "Pass a list instead"),
        "bytes": ({"kwargs": {"data": b"\x00\x01"}}, "kwargs['data'] cannot be stored as JSON"),
        "a bytearray": ({"args": [1, bytearray(b"x")]}, "args[1] cannot be stored as JSON"),
        "a model instance": (
            {"kwargs": {"owner": user}},
            "Pass its primary key and load the object inside the job",
        ),
        "a model instance nested": (
            {"kwargs": {"options": {"users": [user]}}},
            "kwargs['options']['users'][0] cannot be stored as JSON",
        ),
        "10,000-deep nesting": ({"kwargs": {"tree": deep}}, "nested too deeply"),
        "10,000-deep nesting in meta": ({"meta": {"tree": deep}}, "nested too deeply"),
        "NaN": ({"args": [float("nan")]}, "args[0] cannot be stored as JSON"),
        "a function": ({"kwargs": {"callback": len}}, "kwargs['callback'] cannot be stored"),
        "a non-string key": ({"kwargs": {1: "one"}}, "kwargs keys must be strings"),
        "kwargs not a dict": ({"kwargs": [("a", 1)]}, "kwargs must be a dict"),
    }


def via_schedule(**arguments: Any) -> None:
    schedule(FUNCTION, **arguments)


def via_schedule_in_transaction(**arguments: Any) -> None:
    with transaction.atomic():
        schedule(FUNCTION, locks=["payload-key"], **arguments)


def via_schedule_at_once(**arguments: Any) -> None:
    schedule(FUNCTION, on_commit=False, locks=["payload-key"], **arguments)


def via_schedule_many(**arguments: Any) -> None:
    # A good call first: all-or-nothing means it must not be written either.
    schedule_many([(FUNCTION, (), {}), {"function": FUNCTION, **arguments}], on_commit=False)


def via_aschedule(**arguments: Any) -> None:
    async_to_sync(aschedule)(FUNCTION, **arguments)


WAYS: dict[str, Callable[..., None]] = {
    "schedule": via_schedule,
    "schedule in atomic": via_schedule_in_transaction,
    "schedule on_commit=False": via_schedule_at_once,
    "schedule_many": via_schedule_many,
    "aschedule": via_aschedule,
}


def test_bad_payloads_raise_a_clear_schedule_error_and_write_nothing():
    """Row 15: each bad payload, each way of scheduling: ScheduleError naming it, no row."""
    user = User.objects.create_user("payload-owner")
    slowest = 0.0
    refused = 0
    for label, (arguments, expected) in bad_payloads(user).items():
        for way, call in WAYS.items():
            started = time.monotonic()
            with pytest.raises(ScheduleError) as caught:
                call(**arguments)
            slowest = max(slowest, time.monotonic() - started)
            message = str(caught.value)
            assert expected in message, f"{label} via {way}: {message!r}"
            assert len(message) < 500, f"{label} via {way}: the message quotes the payload"
            # No RecursionError in the chain a traceback would show.
            chain: BaseException | None = caught.value
            while chain is not None:
                assert not isinstance(chain, RecursionError), f"{label} via {way}"
                chain = chain.__cause__ or (
                    None if chain.__suppress_context__ else chain.__context__
                )
            refused += 1
    assert Job.objects.count() == 0
    assert JobLock.objects.count() == 0
    report(
        15,
        "bad payloads",
        payloads=len(bad_payloads(user)),
        ways=len(WAYS),
        refused=refused,
        jobs_written=Job.objects.count(),
        slowest_refusal_s=round(slowest, 3),
    )


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks needs Django 6.0+")
def test_the_django_tasks_backend_refuses_bad_payloads_too():
    """Row 15: ``task.enqueue()`` through the queue's backend validates the same way."""
    from tests.faultapp.jobs_web import django_task

    cases = {
        "over the 1048576-byte limit": {"blob": "x" * (2 * 1024 * 1024)},
        "Pass a list instead": {"tags": {1, 2}},
        "nested too deeply": {"tree": nested(10_000)},
    }
    for expected, arguments in cases.items():
        with pytest.raises(ScheduleError, match=expected):
            django_task.enqueue(**arguments)
    assert Job.objects.count() == 0


def imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "id", getattr(node.func, "attr", ""))
            in {
                "import_module",
                "__import__",
                "import_string",
            }
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def test_the_packages_never_use_pickle():
    """Row 15: no module of async_queue or powercrud imports or names a pickle-like codec."""
    files = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 20
    offenders: list[str] = []
    for path in files:
        source = path.read_text()
        tree = ast.parse(source, filename=str(path))
        for name in imported_modules(tree):
            if name.split(".")[0] in UNSAFE_MODULES or name.rpartition(".")[2] in UNSAFE_NAMES:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Name | ast.Attribute):
                identifier = node.id if isinstance(node, ast.Name) else node.attr
                if identifier in UNSAFE_MODULES | UNSAFE_NAMES:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {identifier}")
    assert offenders == []
    report(15, "no pickle", files_scanned=len(files), offenders=len(offenders))


def test_the_scan_would_catch_pickle(tmp_path: Path):
    """The scan above is not vacuous: it flags each way of reaching pickle."""
    sources = [
        "import pickle",
        "from pickle import loads",
        "import marshal as m",
        "from django.core.serializers.base import PickleSerializer",
        "import importlib\nimportlib.import_module('shelve')",
    ]
    for source in sources:
        names = imported_modules(ast.parse(source))
        assert any(
            name.split(".")[0] in UNSAFE_MODULES or name.rpartition(".")[2] in UNSAFE_NAMES
            for name in names
        ), source
