"""Demo job functions: quick, slow, flaky and failing ones, and the CRUD pages' bulk edit.

Arguments are plain JSON values (ids, numbers); each job loads what it needs.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count

import async_queue
from powercrud.jobs import BulkEdit

from .models import Author, Book

CENT = Decimal("0.01")


@async_queue.job
def summarize_author(author_id: int) -> dict[str, Any]:
    """A quick job: count an author's books and average their prices."""
    author = Author.objects.get(pk=author_id)
    stats = author.books.aggregate(books=Count("id"), average=Avg("price"))
    average = stats["average"]
    return {
        "author": author.name,
        "books": stats["books"],
        "average_price": None if average is None else str(Decimal(average).quantize(CENT)),
    }


@async_queue.job
def reprice_books(percent: int, seconds: float = 20) -> dict[str, Any]:
    """A slow job: change every book's price by ``percent``, taking about ``seconds`` in all."""
    if percent <= -100:
        raise ValueError(f"percent must be above -100; got {percent}.")
    books = list(Book.objects.order_by("pk"))
    factor = Decimal(100 + percent) / 100
    pause = seconds / max(len(books), 1)
    before = after = Decimal(0)
    for done, book in enumerate(books, start=1):
        time.sleep(pause)
        before += book.price
        book.price = (book.price * factor).quantize(CENT)
        book.save(update_fields=["price"])
        after += book.price
        async_queue.report_progress(done, len(books), f"Repriced {book.title!r}")
    return {
        "books": len(books),
        "percent": percent,
        "total_before": str(before),
        "total_after": str(after),
    }


# Retried every 3 seconds (no jitter), so the retries can be watched on the job's page.
@async_queue.job(
    max_attempts=3,
    retry_on=ConnectionError,
    backoff=async_queue.Exponential(base=3, factor=1, jitter=0),
)
def flaky_import(fail_times: int = 2) -> str:
    """A job that fails its first ``fail_times`` attempts, as if upstream were not ready yet."""
    job = async_queue.current_job()
    if job is None:  # called directly, not by a worker: there are no attempts to count
        return "imported (not run as a job)"
    if job.attempts <= fail_times:
        raise ConnectionError(f"upstream not ready (attempt {job.attempts})")
    return f"imported on attempt {job.attempts}"


@async_queue.job
def always_fails() -> None:
    """A job that fails on every attempt, so it ends ``failed``."""
    raise ValueError("this demo job always fails")


class PacedBulkEdit(BulkEdit):
    """powercrud's bulk edit, stretched in a worker to take ``DEMO_BULK_SECONDS`` in all.

    A real bulk edit of a few thousand rows is over in a fraction of a second, before
    the progress modal has polled twice; the demo paces it so there is progress to
    watch. In the request (below the view's ``bulk_async_threshold``) it is not slowed.
    """

    reached = 0

    def progress(self, done: int, total: int, message: str) -> None:
        super().progress(done, total, message)
        if total and async_queue.current_job() is not None:
            time.sleep(settings.DEMO_BULK_SECONDS * max(done - self.reached, 0) / total)
            self.reached = done


@async_queue.job
def paced_bulk_edit(
    model: str,
    pks: list[str],
    changes: dict[str, Any] | None = None,
    m2m: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The demo's bulk edit (``bulk_edit_job`` of the CRUD views): ``PacedBulkEdit``."""
    return PacedBulkEdit(model, pks, changes, m2m).run()
