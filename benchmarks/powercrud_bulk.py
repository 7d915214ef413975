"""powercrud's bulk edit and delete of 10,000 rows as one job each, against a baseline.

    PYTHONPATH=. python -m benchmarks.powercrud_bulk                          # SQLite
    ASYNC_QUEUE_TEST_DB=postgres PYTHONPATH=. python -m benchmarks.powercrud_bulk
    ... --rows 2000 --json

It creates its own database (``bench_bulk``, dropped at the end), seeds the rows,
then does what a user does through the test client: select all matching, apply a
bulk edit (the request schedules one job declaring every row), and a real
``flush_queue`` worker process runs the job while this script polls its progress
through the view's status endpoint, as the progress modal does. Edits run both
ways a bulk edit writes: batched UPDATEs (when no receiver or override could
notice) and ``save()`` per object. Reported: the request's time, the job's own
time (``started_at`` to ``finished_at``, database clock) and rows per second,
and the progress values seen.

Each run also times its baseline in the same process, just before the job: the same
change written by hand with the ORM (``QuerySet.update()``, the many-to-many table's
rows, ``QuerySet.delete()``; ``save()`` per object for the per-object runs), in a
transaction rolled back afterwards. ``ratio`` is the job's time over the baseline's:
what selecting, validating, locking and reporting progress cost on top of the write.

It uses the test project (``tests.settings``, the bulk views of ``tests.crudapp``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    test = settings.DATABASES["default"].setdefault("TEST", {})
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        test["NAME"] = str(ROOT / ".pytest-db" / "bench_bulk.sqlite3")
    else:
        test["NAME"] = "bench_bulk"
    settings.ROOT_URLCONF = "tests.crudapp.bulk_urls"
    settings.ALLOWED_HOSTS = ["*"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django.setup()

    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode=WAL")
        results = run(options.rows)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    if options.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results["runs"]:
            print(
                f"{results['database']:>10}  {result['what']:<34} {result['rows']:>6} rows  "
                f"request {result['request_s']:6.2f}s  job {result['job_s']:6.2f}s  "
                f"{result['rows_per_s']:>8,.0f} rows/s  baseline {result['baseline_s']:6.3f}s  "
                f"ratio {result['ratio']:5.1f}x  progress seen: {result['progress']}"
            )


def run(rows: int) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.test import Client
    from django.urls import reverse

    from async_queue import Job
    from tests.crudapp.helpers import make_author, make_books
    from tests.crudapp.models import Book, Tag

    admin = User.objects.create_superuser("admin", password="pw")
    client = Client()
    client.force_login(admin)
    author = make_author()
    tag = Tag.objects.create(slug="bench")
    through = Book.tags.through
    hx = {"HTTP_HX_REQUEST": "true"}
    runs = []

    def baseline(change: Callable[[], object]) -> float:
        """Seconds ``change()`` takes, in a transaction that is rolled back."""
        with transaction.atomic():
            started = time.perf_counter()
            change()
            seconds = time.perf_counter() - started
            transaction.set_rollback(True)
        return seconds

    def save_each(**values: object) -> None:
        for book in Book.objects.all():
            for name, value in values.items():
                setattr(book, name, value)
            book.save(update_fields=list(values))

    def bulk(
        what: str,
        data: dict[str, str],
        url: str,
        by_hand: Callable[[], object],
        url_base: str = "book",
    ) -> None:
        baseline_s = baseline(by_hand)
        select = reverse(f"{url_base}-select")
        response = client.post(select, {"action": "all", "query": ""}, **hx)
        assert response.status_code == 200, response.content[:300]
        started = time.perf_counter()
        response = client.post(url, {"stage": "apply", **data}, **hx)
        request_s = time.perf_counter() - started
        assert response.status_code == 202, response.content[:500]
        job = Job.objects.order_by("-id").first()
        status_url = reverse(f"{url_base}-bulk-status", kwargs={"job_pk": job.pk})
        seen: list[str] = []
        worker = subprocess.Popen(
            [sys.executable, "-m", "django", "flush_queue", "--jobs", "1", "-v", "0"],
            env={
                **os.environ,
                "ASYNC_QUEUE_TEST_DB_NAME": connection.settings_dict["NAME"],
                "PYTHONPATH": str(ROOT),
            },
            cwd=ROOT,
        )
        while True:
            answer = client.get(status_url, **hx)
            text = answer.content.decode()
            if 'data-percent="' in text:
                percent = text.split('data-percent="')[1].split('"')[0]
                if not seen or seen[-1] != percent:
                    seen.append(percent)
            if answer.status_code == 286:
                break
            time.sleep(0.25)
        assert worker.wait(timeout=600) == 0
        job.refresh_from_db()
        assert job.status == "succeeded", job.last_error
        job_s = (job.finished_at - job.started_at).total_seconds()
        runs.append(
            {
                "what": what,
                "rows": rows,
                "request_s": round(request_s, 3),
                "job_s": round(job_s, 3),
                "rows_per_s": round(rows / job_s),
                "baseline_s": round(baseline_s, 3),
                "ratio": round(job_s / baseline_s, 2),
                "progress": seen,
            }
        )

    make_books(rows)
    edit = reverse("book-bulk-edit")
    bulk(
        "edit status + in_print (choices, bool)",
        {
            "status__change": "on",
            "status": "archived",
            "in_print__change": "on",
            "in_print": "False",
        },
        edit,
        lambda: Book.objects.update(status="archived", in_print=False),
    )
    assert Book.objects.filter(status="archived", in_print=False).count() == rows
    bulk(
        "edit author (foreign key)",
        {"author__change": "on", "author": str(author.pk)},
        edit,
        lambda: Book.objects.update(author=author),
    )
    bulk(
        "edit tags (many-to-many add)",
        {"tags__change": "on", "tags__mode": "add", "tags": tag.pk},
        edit,
        lambda: through.objects.bulk_create(
            through(book_id=pk, tag_id=tag.pk) for pk in Book.objects.values_list("pk", flat=True)
        ),
    )
    assert tag.books.count() == rows
    bulk(
        "edit status, save() per object",
        {"status__change": "on", "status": "published"},
        reverse("saveeach-bulk-edit"),
        lambda: save_each(status="published"),
        "saveeach",
    )
    bulk(
        "edit tags, per object (m2m remove)",
        {"tags__change": "on", "tags__mode": "remove", "tags": tag.pk},
        reverse("saveeach-bulk-edit"),
        lambda: [book.tags.remove(tag) for book in Book.objects.all()],
        "saveeach",
    )
    assert not tag.books.exists()
    bulk("delete", {}, reverse("book-bulk-delete"), lambda: Book.objects.all().delete())
    assert not Book.objects.exists()
    return {"database": connection.vendor, "runs": runs}


if __name__ == "__main__":
    main()
