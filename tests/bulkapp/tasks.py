"""Job functions and helpers of the bulk tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import async_queue
from async_queue import Job, Status
from async_queue.progress import report_progress
from powercrud.async_manager import AsyncManager
from powercrud.jobs import BulkEdit

from .models import Author, Book, Tag


@async_queue.job
def hold_for(seconds: float) -> float:
    """Keep the job (and the locks it declared) running for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        report_progress(int((seconds - (end - time.monotonic())) * 10), int(seconds * 10), "busy")
        time.sleep(0.05)
    return seconds


def make_books(count: int, **fields: Any) -> list[Book]:
    """``count`` books titled ``book 0000``... (bulk_create: no per-row query)."""
    defaults: dict[str, Any] = {"price": Decimal("10.00")}
    defaults.update(fields)
    books = Book.objects.bulk_create(Book(title=f"book {n:04d}", **defaults) for n in range(count))
    if books and books[0].pk is None:  # backends without RETURNING: read them back
        books = list(Book.objects.order_by("id")[:count])
    return books


def make_tags(*codes: str) -> list[Tag]:
    return [Tag.objects.create(code=code, label=code.upper()) for code in codes]


def make_author(name: str = "Ann") -> Author:
    return Author.objects.create(name=name)


def last_job() -> Job:
    return Job.objects.order_by("-id").first()


def run_queued(predicate: Callable[[Job], bool] | None = None) -> list[Job]:
    """Run every queued job in this process, as a worker would (``job.execute()``)."""
    ran = []
    for job in Job.objects.filter(status=Status.QUEUED).order_by("id"):
        if predicate is None or predicate(job):
            job.execute()
            ran.append(job)
    return ran


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
