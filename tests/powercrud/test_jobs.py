"""The bulk job functions run as jobs: they write the rows, report progress, and roll back."""

from __future__ import annotations

import pytest

from async_queue import Status, schedule, snapshot
from powercrud import jobs
from powercrud.jobs import BulkDelete, BulkEdit
from tests.crudapp.helpers import make_author, make_books, make_tags, run_queued
from tests.crudapp.models import Book, Loan
from tests.crudapp.tasks import SaveEachBulkEdit

# Transactional: each job runs in its own transaction, as in a worker.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reports(monkeypatch) -> list[tuple[int, int | None, str]]:
    """Every ``report_progress()`` call of the bulk jobs, passed on to the real one."""
    seen: list[tuple[int, int | None, str]] = []
    real = jobs.report_progress

    def spy(current: int, total: int | None = None, message: str = "") -> None:
        seen.append((current, total, message))
        real(current, total, message)

    monkeypatch.setattr(jobs, "report_progress", spy)
    return seen


def run(function: str, **kwargs):
    """Schedule ``function(**kwargs)`` as a one-attempt job and run it as a worker would."""
    job = schedule(function, kwargs=kwargs, max_attempts=1, on_commit=False)
    (ran,) = run_queued()
    assert ran.pk == job.pk
    return ran


@pytest.mark.parametrize(
    "function", ["powercrud.jobs.bulk_edit", "tests.crudapp.tasks.bulk_edit_saving_each"]
)
def test_a_bulk_edit_job_writes_every_row_and_reports_its_progress(function, reports):
    books = make_books(3)
    author = make_author()
    (tag,) = make_tags("sf")
    job = run(
        function,
        model="crudapp.book",
        pks=[str(book.pk) for book in books],
        changes={"status": "published", "author": author.pk},
        m2m={"tags": {"mode": "add", "pks": [tag.pk]}},
    )
    assert job.status == Status.SUCCEEDED, job.last_error
    fields = job.result.pop("fields")
    assert job.result == {"action": "edit", "model": "crudapp.book", "updated": 3, "missing": 0}
    assert sorted(fields) == ["author", "status", "tags"]
    for book in Book.objects.all():
        assert (book.status, book.author, list(book.tags.all())) == ("published", author, [tag])
    # Checked 1..3, then saved (per batch or per object), out of 2 steps per object.
    assert [current for current, _, _ in reports][:3] == [1, 2, 3]
    # Each message is one phrase: the phase with its own counts and percent (the overall
    # percent, half of it while checking, is the current/total of the report).
    assert [message for _, _, message in reports][:3] == [
        "Checking: 1 of 3 books (33%)",
        "Checking: 2 of 3 books (66%)",
        "Checking: 3 of 3 books (100%)",
    ]
    assert reports[3][2].startswith("Saving: ")
    assert {total for _, total, _ in reports} == {6}
    currents = [current for current, _, _ in reports]
    assert currents == sorted(currents)
    assert reports[-1] == (6, 6, "Updated 3 books")
    progress = snapshot([job])[job.pk]
    assert (progress.current, progress.total, progress.message) == (6, 6, "Updated 3 books")


def test_a_bulk_delete_job_deletes_the_rows_and_counts_those_already_gone(reports):
    books = make_books(3)
    kept = Book.objects.create(title="kept")
    job = run(
        "powercrud.jobs.bulk_delete",
        model="crudapp.book",
        pks=[str(book.pk) for book in books] + ["999999"],
    )
    assert job.status == Status.SUCCEEDED, job.last_error
    assert job.result["deleted"] == 3
    assert job.result["missing"] == 1
    assert list(Book.objects.all()) == [kept]
    assert reports[-1] == (3, 3, "Deleted 3 books")
    assert snapshot([job])[job.pk].current == 3


def test_an_edit_failing_midway_rolls_back_the_rows_already_saved(monkeypatch, reports):
    books = make_books(3)
    saved: list[int] = []

    def save_then_fail(self, obj, update_fields):
        if saved:
            raise RuntimeError("the disk is full")
        BulkEdit.save_object(self, obj, update_fields)
        saved.append(obj.pk)

    monkeypatch.setattr(SaveEachBulkEdit, "save_object", save_then_fail)
    job = run(
        "tests.crudapp.tasks.bulk_edit_saving_each",
        model="crudapp.book",
        pks=[str(book.pk) for book in books],
        changes={"status": "archived"},
    )
    assert job.status == Status.FAILED
    assert "the disk is full" in job.last_error
    assert saved == [books[0].pk]  # one row was written, then rolled back with the job
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}


def test_a_delete_stopped_by_a_protected_row_deletes_nothing(monkeypatch, reports):
    books = make_books(3)
    Loan.objects.create(book=books[2], borrower="Bob")
    monkeypatch.setattr(BulkDelete, "batch_size", 1)  # the first rows go before the lent one
    job = run(
        "powercrud.jobs.bulk_delete", model="crudapp.book", pks=[str(book.pk) for book in books]
    )
    assert job.status == Status.FAILED
    assert "Nothing was deleted" in job.last_error
    assert "loan loan to Bob" in job.last_error
    assert [current for current, _, _ in reports] == [1, 2]  # deleted, then rolled back
    assert [message for _, _, message in reports] == [
        "Deleting: 1 of 3 books (33%)",
        "Deleting: 2 of 3 books (66%)",
    ]
    assert Book.objects.count() == 3


def test_an_edit_that_fails_validation_writes_nothing(reports):
    books = make_books(2, in_print=False)
    job = run(
        "powercrud.jobs.bulk_edit",
        model="crudapp.book",
        pks=[str(book.pk) for book in books],
        changes={"status": "bestseller"},
    )
    assert job.status == Status.FAILED
    assert "cannot be a bestseller" in job.last_error
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}
    assert all(message.startswith("Checking: ") for _, _, message in reports)
