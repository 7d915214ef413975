"""The list page in a real browser: sort, filter, paginate, history, the modal, conflicts.

Needs the ``playwright`` package and Debian's Chromium at ``/usr/bin/chromium``
(``playwright install`` is not used); skipped with the reason when either is missing.
Screenshots are saved under the test's ``tmp_path``.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client

from async_queue import Job, Status, schedule
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.crudapp import tasks
from tests.crudapp.factories import make_author, make_book, make_books, make_user
from tests.crudapp.models import Book

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install playwright)"
)
expect = sync_api.expect
pytestmark = [
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None,
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)",
    ),
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.crudapp.root_urls"),
]


@pytest.fixture
def signed_in(live_server) -> Callable[[], str]:
    """A superuser's session cookie value (taken before the browser starts: no ORM inside)."""

    def sign_in() -> str:
        client = Client()
        client.force_login(make_user("admin", "superuser"))
        return client.cookies["sessionid"].value

    return sign_in


@contextmanager
def browser_page(live_server, session: str, shots: Path) -> Iterator[object]:
    # No ORM calls inside this block: Playwright's event loop makes Django treat the
    # thread as async.
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
            page = context.new_page()
            page.set_default_timeout(10_000)
            try:
                yield page
            except BaseException:
                page.screenshot(path=shots / "failure.png", full_page=True)
                raise
        finally:
            browser.close()


def settled(page) -> None:
    """Wait until htmx has finished swapping: new content gets its listeners on settling."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, "
        ".htmx-added')"
    )


def rows(page) -> object:
    return page.locator("#pc-results tbody tr")


def first_title(page) -> object:
    return rows(page).first.locator("td").first


def test_sort_filter_and_paginate_in_place_with_the_url_in_sync(live_server, signed_in, tmp_path):
    make_books(25)
    session = signed_in()
    base = f"{live_server.url}/crud/book/"
    with browser_page(live_server, session, tmp_path) as page:
        page.goto(base)
        assert page.evaluate("typeof htmx") == "object", "htmx did not load"
        expect(page.locator(".pc-count")).to_have_text("25 books · page 1 of 3")
        expect(first_title(page)).to_have_text("Book 000")
        loads = []
        page.on("load", lambda _: loads.append(page.url))

        page.click("th.pc-col-title a")
        page.wait_for_url(f"{base}?o=title")
        expect(page.locator("th.pc-col-title")).to_have_attribute("aria-sort", "ascending")
        settled(page)
        page.click("th.pc-col-title a")
        page.wait_for_url(f"{base}?o=-title")
        expect(first_title(page)).to_have_text("Book 024")
        settled(page)
        page.screenshot(path=tmp_path / "sorted.png", full_page=True)

        page.select_option("#id_status", "published")
        page.wait_for_url("**status=published**")
        assert "o=-title" in page.url  # the filter form carries the sort along
        expect(page.locator(".pc-count")).to_have_text("8 books")
        expect(first_title(page)).to_have_text("Book 022")
        statuses = rows(page).locator("td:nth-child(3)").all_inner_texts()
        assert set(statuses) == {"Published"}
        page.screenshot(path=tmp_path / "filtered.png", full_page=True)

        page.goto(f"{base}?o=title")
        loads.clear()
        page.click(".pc-pages a:text-is('2')")
        page.wait_for_url(f"{base}?o=title&page=2")
        expect(first_title(page)).to_have_text("Book 010")
        settled(page)
        page.select_option(".pc-page-size select", "25")
        page.wait_for_url("**page_size=25**")
        expect(rows(page)).to_have_count(25)
        settled(page)
        assert loads == [], "the list reloaded the page instead of swapping the table"

        page.go_back()
        page.wait_for_url(f"{base}?o=title&page=2")
        expect(first_title(page)).to_have_text("Book 010")
        expect(rows(page)).to_have_count(10)
        page.go_back()
        page.wait_for_url(f"{base}?o=title")
        expect(first_title(page)).to_have_text("Book 000")
        page.go_forward()
        page.wait_for_url(f"{base}?o=title&page=2")
        page.reload()
        expect(first_title(page)).to_have_text("Book 010")
        expect(page.locator(".pc-current")).to_have_text("2")
        page.screenshot(path=tmp_path / "page-2.png", full_page=True)


def test_edit_in_the_modal_shows_errors_in_place_then_closes_and_refreshes(
    live_server, signed_in, tmp_path
):
    author = make_author("Frank")
    book = make_book("Dune", author)
    make_book("Emma", author)
    session = signed_in()
    with browser_page(live_server, session, tmp_path) as page:
        page.goto(f"{live_server.url}/crud/book/")
        row = page.locator(f"tr[data-pk='{book.pk}']")
        row.get_by_role("link", name="Edit").click()
        modal = page.locator("#pc-modal")
        expect(modal).to_be_visible()
        expect(modal.locator("#id_title")).to_have_value("Dune")
        settled(page)
        page.fill("#id_title", "")
        page.fill("#id_price", "1234567890")
        modal.get_by_role("button", name="Save").click()
        expect(modal.locator(".pc-form-field.pc-invalid")).to_have_count(2)
        expect(modal).to_contain_text("This field is required.")
        expect(modal).to_be_visible()
        settled(page)
        page.screenshot(path=tmp_path / "modal-errors.png", full_page=True)

        page.fill("#id_title", "Dune Messiah")
        page.fill("#id_price", "12.50")
        modal.get_by_role("button", name="Save").click()
        expect(modal).to_be_hidden()
        expect(row.locator("td").first).to_have_text("Dune Messiah")
        expect(page.locator("#pc-flash")).to_have_text("Book “Dune Messiah” saved.")
        settled(page)
        page.screenshot(path=tmp_path / "modal-saved.png", full_page=True)

        # Escape closes the modal and empties it.
        row.get_by_role("link", name="View").click()
        expect(modal).to_contain_text("12.50")
        settled(page)
        page.keyboard.press("Escape")
        expect(modal).to_be_hidden()
        expect(page.locator("#pc-modal-content")).to_be_empty()
    book.refresh_from_db()
    assert book.title == "Dune Messiah"


def test_editing_a_busy_row_shows_the_conflict_modal_and_keeps_the_input(
    live_server, signed_in, tmp_path
):
    book = make_book("Dune")
    # Due in an hour: no worker (a stray one of another test) ever runs it.
    job = schedule(
        tasks.work_slowly, locks=[book], user=make_user("mallory"), run_after=timedelta(hours=1)
    )
    session = signed_in()

    def finish_job() -> None:
        try:
            Job.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED)
        finally:
            connections.close_all()

    with browser_page(live_server, session, tmp_path) as page:
        page.goto(f"{live_server.url}/crud/book/")
        page.locator(f"tr[data-pk='{book.pk}']").get_by_role("link", name="Edit").click()
        modal = page.locator("#pc-modal")
        conflict = modal.locator("#pc-conflict")
        expect(conflict).to_contain_text("“Dune” is busy")
        expect(conflict).to_contain_text(f"Job #{job.pk}")
        expect(conflict).to_contain_text("started by mallory")
        expect(conflict).to_contain_text("waiting in the queue")
        settled(page)
        page.fill("#id_title", "Typed while busy")
        modal.get_by_role("button", name="Try again").click()
        expect(conflict).to_contain_text("Nothing was saved: your input is still in the form")
        expect(modal.locator("#id_title")).to_have_value("Typed while busy")
        settled(page)
        page.screenshot(path=tmp_path / "conflict.png", full_page=True)

        # The notice polls: once the job has ended it says so, and saving works.
        thread = threading.Thread(target=finish_job)
        thread.start()
        thread.join()
        expect(conflict).to_contain_text("The job has finished", timeout=8_000)
        expect(modal.locator("#id_title")).to_have_value("Typed while busy")
        modal.get_by_role("button", name="Try again").click()
        expect(modal).to_be_hidden()
        expect(page.locator(f"tr[data-pk='{book.pk}'] td").first).to_have_text("Typed while busy")
    assert Book.objects.get(pk=book.pk).title == "Typed while busy"
