"""Job functions powercrud's tests schedule (locks are declared by the caller), and the
project-side overrides of powercrud's bulk machinery the bulk tests use."""

from __future__ import annotations

import time
from typing import Any

import async_queue
from async_queue import Job, report_progress
from powercrud.async_manager import AsyncManager
from powercrud.jobs import BulkEdit

from .models import Book


@async_queue.job
def work_slowly(steps: int = 20, delay: float = 0.25) -> int:
    """Hold the declared objects for ``steps * delay`` seconds, reporting progress."""
    for step in range(1, steps + 1):
        time.sleep(delay)
        report_progress(step, steps, f"step {step} of {steps}")
    return steps


@async_queue.job
def hold_for(seconds: float) -> float:
    """Keep the job (and the locks it declared) running for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        report_progress(int((seconds - (end - time.monotonic())) * 10), int(seconds * 10), "busy")
        time.sleep(0.05)
    return seconds


class PatientManager(AsyncManager):
    """A project's own async manager: three attempts, and its own queue."""

    default_max_attempts = 3

    def schedule(self, function: str, kwargs: dict[str, Any], **options: Any) -> Job:
        self.config.setdefault("queue", "patient")
        return super().schedule(function, kwargs, **options)


class SlowBulkEdit(BulkEdit):
    """A project's own bulk edit (a hook overridden): each save takes a little while."""

    pause = 0.01

    def save_object(self, obj: Book, update_fields: list[str]) -> None:
        time.sleep(self.pause)
        super().save_object(obj, update_fields)


@async_queue.job
def slow_bulk_edit(
    model: str,
    pks: list[str],
    changes: dict[str, Any] | None = None,
    m2m: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return SlowBulkEdit(model, pks, changes, m2m).run()


class SaveEachBulkEdit(BulkEdit):
    """The per-object path: ``save()`` for every object (what receivers get)."""

    fast_write = False


@async_queue.job
def bulk_edit_saving_each(
    model: str,
    pks: list[str],
    changes: dict[str, Any] | None = None,
    m2m: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return SaveEachBulkEdit(model, pks, changes, m2m).run()
