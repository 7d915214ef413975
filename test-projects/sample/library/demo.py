"""What ``seed_demo``, ``demo_status`` and the home page's buttons do: demo data and jobs.

Each ``seed_demo --jobs`` schedules a *batch*: every job carries its batch id and role
in ``meta``, so ``demo_status`` can tell whether the latest batch ended as it should
(quick and flaky jobs succeeded, the failing job failed) whatever earlier runs left.
The slow job is not in the batch: the home page starts it (``start_slow_job``), when
someone is there to watch its progress.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from async_queue import Job, Status, schedule

from . import tasks
from .models import Author, BigBook, Book, Tag

AUTHORS = [
    "Ursula K. Le Guin",
    "Terry Pratchett",
    "Octavia E. Butler",
    "Italo Calvino",
    "Tove Jansson",
]
ADJECTIVES = ["Silent", "Invisible", "Distant", "Burning", "Winter"]
NOUNS = ["Cities", "Orchard", "Lighthouse", "Archive", "River", "Garden", "Tower", "Map", "Fox"]
# 200 books: "Select all matching" on the books list reaches powercrud's bulk threshold
# (100), so the bulk edit runs as a job with a progress modal.
BOOKS_PER_AUTHOR = 40
TAGS = ["classic", "fantasy", "science fiction", "short stories", "translated"]
BIGBOOK_BATCH = 5000

BATCH = "demo_batch"
ROLE = "demo_role"
EXPECTED = {"quick": Status.SUCCEEDED, "flaky": Status.SUCCEEDED, "failing": Status.FAILED}


def ensure_admin() -> bool:
    """Create the superuser admin / admin unless it exists; returns whether it was created."""
    users = get_user_model()._default_manager
    if users.filter(username="admin").exists():
        return False
    users.create_superuser("admin", "admin@example.com", "admin")
    return True


def ensure_catalog() -> int:
    """Create the demo authors and their books if there are no books; returns how many."""
    if Book.objects.exists():
        return 0
    books = []
    for number, name in enumerate(AUTHORS):
        author, _ = Author.objects.get_or_create(name=name)
        for index in range(BOOKS_PER_AUTHOR):
            serial = number * BOOKS_PER_AUTHOR + index
            books.append(
                Book(
                    title=f"The {ADJECTIVES[serial % len(ADJECTIVES)]} {NOUNS[serial % len(NOUNS)]}"
                    f" {serial + 1}",
                    author=author,
                    price=Decimal(5 + serial * 7 % 30) + Decimal("0.99"),
                    status=Book.Status.PUBLISHED if serial % 3 else Book.Status.DRAFT,
                )
            )
    Book.objects.bulk_create(books)
    return len(books)


def ensure_tags() -> int:
    """Create the demo tags if there are none and tag the books; returns how many tags."""
    if Tag.objects.exists():
        return 0
    tags = Tag.objects.bulk_create(Tag(name=name) for name in TAGS)
    through = Book.tags.through
    book_ids = Book.objects.order_by("pk").values_list("pk", flat=True)
    through.objects.bulk_create(
        through(book_id=book_id, tag_id=tags[(n + k) % len(tags)].pk)
        for n, book_id in enumerate(book_ids)
        for k in range(1 + n % 2)
    )
    return len(tags)


def bigbook(serial: int, authors: list[int]) -> BigBook:
    """The demo BigBook number ``serial``: varied titles, prices, statuses and dates."""
    statuses = (BigBook.Status.PUBLISHED, BigBook.Status.DRAFT, BigBook.Status.OUT_OF_PRINT)
    return BigBook(
        title=f"{ADJECTIVES[serial % len(ADJECTIVES)]} {NOUNS[serial * 7 % len(NOUNS)]} "
        f"{serial + 1}",
        author_id=authors[serial * 31 % len(authors)],
        price=Decimal(serial * 7919 % 9000 + 100) / 100,
        status=statuses[0] if serial % 5 < 3 else statuses[serial % 2 + 1],
        published=date(1950, 1, 1) + timedelta(days=serial * 37 % 27000),
    )


def ensure_bigbooks(total: int) -> int:
    """Add BigBook rows until there are ``total``, in large batches; returns how many."""
    existing = BigBook.objects.count()
    missing = max(0, total - existing)
    if not missing:
        return 0
    ensure_catalog()
    authors = list(Author.objects.order_by("pk").values_list("pk", flat=True))
    rows = (bigbook(serial, authors) for serial in range(existing, existing + missing))
    with transaction.atomic():
        while batch := list(itertools.islice(rows, BIGBOOK_BATCH)):
            BigBook.objects.bulk_create(batch)
    return missing


@dataclass(frozen=True)
class Scheduled:
    role: str
    job: Job
    note: str

    def __str__(self) -> str:
        args = ", ".join(
            [*map(repr, self.job.args), *(f"{k}={v!r}" for k, v in self.job.kwargs.items())]
        )
        return f"#{self.job.pk} {self.job.name}({args}) [{self.role}]: {self.note}"


def schedule_demo_jobs() -> tuple[int, list[Scheduled]]:
    """Cancel demo jobs still queued from earlier runs, then schedule a new batch.

    Returns how many were cancelled and what was scheduled. It all happens in one
    transaction: the rows appear together when it commits.
    """
    batch = secrets.token_hex(4)
    scheduled: list[Scheduled] = []

    def add(role: str, note: str, function: object, **options: object) -> None:
        meta = {BATCH: batch, ROLE: role}
        scheduled.append(Scheduled(role, schedule(function, meta=meta, **options), note))

    with transaction.atomic():
        cancelled = Job.objects.filter(meta__has_key=BATCH).cancel()
        for author_id in Author.objects.order_by("pk").values_list("pk", flat=True)[:5]:
            add(
                "quick",
                "succeeds at once",
                tasks.summarize_author,
                args=[author_id],
                priority=10,
            )
        add(
            "flaky",
            "fails twice with ConnectionError, is retried after 3 s each time, then succeeds",
            tasks.flaky_import,
            kwargs={"fail_times": 2},
        )
        add("failing", "fails 3 times and ends failed", tasks.always_fails, max_attempts=3)
    return cancelled, scheduled


def start_slow_job(user: Any) -> Job:
    """The home page's slow job: reprice every book, reporting progress as it goes."""
    return schedule(
        tasks.reprice_books,
        kwargs={"percent": 5, "seconds": settings.DEMO_SLOW_SECONDS},
        user=user,
    )


def start_flaky_job(user: Any) -> Job:
    """The home page's failing-then-retrying job: two failures, retried, then success."""
    return schedule(tasks.flaky_import, kwargs={"fail_times": 2}, user=user)


def latest_batch_report() -> tuple[str, list[str]]:
    """Where the latest batch's quick, flaky and failing jobs are.

    Returns a verdict, ``"done"`` (all ended as expected), ``"waiting"`` or ``"wrong"``
    (one ended otherwise), and one line per job.
    """
    newest = Job.objects.filter(meta__has_key=BATCH).order_by("-id").first()
    if newest is None:
        return "wrong", ["No demo jobs: run `manage.py seed_demo --jobs` first."]
    jobs = Job.objects.filter(**{f"meta__{BATCH}": newest.meta[BATCH]}).order_by("id")
    verdict, lines = "done", []
    for job in jobs:
        expected = EXPECTED.get(job.meta.get(ROLE))
        lines.append(f"#{job.pk} {job.name}: {job.status}, attempt {job.attempts}")
        if expected is None or job.status == expected:
            continue
        if job.is_finished:
            lines[-1] += f" (expected {expected})"
            verdict = "wrong"
        elif verdict == "done":
            verdict = "waiting"
    return verdict, lines
