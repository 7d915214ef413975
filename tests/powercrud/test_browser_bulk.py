"""Bulk edit in a real browser: select all, a job in a real worker, the progress modal, the table.

Needs the ``playwright`` package and Debian's Chromium at ``/usr/bin/chromium``
(``playwright install`` is not used); skipped with the reason when either is missing.
"""

import shutil
import time
from decimal import Decimal

import pytest
from django.test import Client

from async_queue import Job, Status
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.crudapp.helpers import make_books
from tests.crudapp.models import Book

ROWS = 300  # with SlowBookView's 10 ms per save: about 3 s of visible progress

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install playwright)"
)
pytestmark = [
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None,
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)",
    ),
    pytest.mark.urls("tests.crudapp.bulk_urls"),
]


@pytest.mark.django_db(transaction=True)
def test_select_all_then_an_async_bulk_edit_reaches_100_percent_and_refreshes_the_table(
    live_server, start_worker, tmp_path, django_user_model
):
    make_books(ROWS)
    user = django_user_model.objects.create_superuser("admin", password="pw")
    login = Client()
    login.force_login(user)
    session = login.cookies["sessionid"].value
    worker = start_worker("--forever", "--sleep", "0.2")
    base = live_server.url
    polls: list[str] = []
    percents: list[float] = []
    began = time.monotonic()
    # No ORM calls inside this block: Playwright's event loop makes Django treat the
    # thread as async.
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
            page = context.new_page()
            page.on(
                "response",
                lambda r: polls.append(str(r.status)) if "/bulk-status/" in r.url else None,
            )
            page.goto(f"{base}/bulk/slowbook/?status=draft")
            assert page.evaluate("typeof htmx") == "object", "htmx did not load"
            page.evaluate("window.pcSamePage = true")  # gone if anything reloads the page
            toolbar = page.locator(".pc-bulk-toolbar")
            count = toolbar.locator(".pc-bulk-count strong")
            sync_api.expect(count).to_have_text("0")

            # Rows clicked in quick succession (their requests queue on the toolbar's wrapper, so
            # no session write is lost), then every row matching the filter.
            checks = page.locator(".pc-bulk-check")
            for n in range(5):
                checks.nth(n).click(no_wait_after=True)
            sync_api.expect(count).to_have_text("5")
            checks.nth(2).click()
            sync_api.expect(count).to_have_text("4")
            sync_api.expect(page.locator(".pc-bulk-check:checked")).to_have_count(4)
            toolbar.locator(".pc-bulk-all").click()
            sync_api.expect(count).to_have_text(str(ROWS))
            sync_api.expect(page.locator(".pc-bulk-check:checked")).to_have_count(10)

            # The bulk edit form opens in the list's modal.
            page.locator(".pc-bulk-edit").click()
            dialog = page.locator("#pc-modal")
            sync_api.expect(dialog).to_be_visible()
            sync_api.expect(dialog.locator("h2")).to_have_text(f"Edit {ROWS} selected books")
            dialog.locator("#id_status__change").check()
            dialog.locator("#id_status").select_option("archived")
            dialog.locator("#id_in_print__change").check()
            dialog.locator("#id_in_print").select_option("False")
            page.screenshot(path=tmp_path / "bulk-form.png", full_page=True)
            dialog.locator(".pc-bulk-apply").click()

            # The progress modal polls the job until it ends.
            progress = dialog.locator(".pc-bulk-progress")
            sync_api.expect(progress).to_be_visible()
            deadline = time.monotonic() + 90
            state = ""
            while time.monotonic() < deadline:
                state = progress.get_attribute("data-state", timeout=5000) or ""
                percent = progress.get_attribute("data-percent", timeout=5000)
                if percent is not None and (not percents or float(percent) != percents[-1]):
                    percents.append(float(percent))
                if state == "running" and not (tmp_path / "bulk-progress.png").exists():
                    page.screenshot(path=tmp_path / "bulk-progress.png", full_page=True)
                if state in ("succeeded", "failed", "cancelled"):
                    break
                page.wait_for_timeout(100)
            assert state == "succeeded", dialog.inner_text()
            sync_api.expect(progress.locator("progress")).to_have_attribute("value", "100.0")
            sync_api.expect(progress.locator(".pc-bulk-percent")).to_have_text("100%")
            sync_api.expect(progress).to_contain_text(f"Updated {ROWS:,} books.")
            # The title, outside the polled element, came along (out of band).
            sync_api.expect(dialog.locator("h2")).to_have_text(f"Updated {ROWS:,} books")
            assert progress.get_attribute("hx-trigger") is None

            # The table refreshed behind the modal: under the same filter no draft is left,
            # the selection is cleared, and the list flashes the outcome.
            sync_api.expect(page.locator(".pc-empty")).to_be_visible()
            sync_api.expect(count).to_have_text("0")
            sync_api.expect(page.locator("#pc-flash")).to_have_text(f"Updated {ROWS:,} books.")
            assert page.evaluate("window.pcSamePage") is True, "the page was reloaded"
            polls_at_end = len(polls)
            page.wait_for_timeout(2500)
            assert len(polls) == polls_at_end, "the progress modal kept polling after the job"
            page.screenshot(path=tmp_path / "bulk-done.png", full_page=True)

            dialog.locator("[data-pc-close]").last.click()
            sync_api.expect(dialog).to_be_hidden()
            page.goto(f"{base}/bulk/slowbook/?status=archived")
            sync_api.expect(page.locator(".pc-table tbody tr")).to_have_count(10)
            page.screenshot(path=tmp_path / "bulk-archived.png", full_page=True)
        finally:
            browser.close()

    worker.send_signal(15)
    assert worker.wait() == 0, worker.stderr
    job = Job.objects.get()
    assert job.status == Status.SUCCEEDED
    assert job.result["updated"] == ROWS
    assert Book.objects.filter(status="archived", in_print=False).count() == ROWS
    assert polls[-1] == "286"
    assert percents[-1] == 100
    assert len(percents) >= 2, percents  # it advanced while we watched
    assert percents == sorted(percents)
    assert (tmp_path / "bulk-done.png").stat().st_size > 0
    print(
        f"\nbrowser test: {time.monotonic() - began:.1f}s, progress seen {percents}, "
        f"screenshots in {tmp_path}"
    )


@pytest.mark.django_db(transaction=True)
def test_giving_a_field_a_value_ticks_its_change_box(live_server, django_user_model):
    books = make_books(3)
    user = django_user_model.objects.create_superuser("admin", password="pw")
    login = Client()
    login.force_login(user)
    session = login.cookies["sessionid"].value
    base = live_server.url
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
            page = context.new_page()
            page.goto(f"{base}/bulk/book/")
            page.locator(".pc-bulk-page").click()
            sync_api.expect(page.locator(".pc-bulk-count strong")).to_have_text("3")
            page.locator(".pc-bulk-edit").click()
            dialog = page.locator("#pc-modal")
            sync_api.expect(dialog.locator("h2")).to_have_text("Edit 3 selected books")
            boxes = {
                name: dialog.locator(f"#id_{name}__change")
                for name in ("status", "in_print", "price", "author", "tags")
            }
            for box in boxes.values():
                sync_api.expect(box).not_to_be_checked()

            dialog.locator("#id_price").fill("12.50")  # typing
            sync_api.expect(boxes["price"]).to_be_checked()
            dialog.locator("#id_status").select_option("published")  # choosing
            sync_api.expect(boxes["status"]).to_be_checked()
            dialog.locator("#id_tags__mode").select_option("replace")  # how, for a relation
            sync_api.expect(boxes["tags"]).to_be_checked()
            for name in ("in_print", "author"):  # untouched fields stay as they were
                sync_api.expect(boxes[name]).not_to_be_checked()

            # The box stays the user's to untick: changing one's mind keeps the old values.
            boxes["price"].uncheck()
            boxes["tags"].uncheck()
            sync_api.expect(boxes["price"]).not_to_be_checked()
            dialog.locator(".pc-bulk-apply").click()
            sync_api.expect(dialog).to_be_hidden()
            sync_api.expect(page.locator("#pc-flash")).to_have_text("Updated 3 books.")
        finally:
            browser.close()
    assert {(b.status, b.price) for b in Book.objects.filter(pk__in=[b.pk for b in books])} == {
        ("published", Decimal("10.00"))
    }
