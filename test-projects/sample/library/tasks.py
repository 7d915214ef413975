"""Demo job functions: quick, slow, flaky and failing ones.

Arguments are plain JSON values (ids, numbers); each job loads what it needs.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count

import async_queue

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


@async_queue.job
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
