"""The dashboard in a real browser: a real worker runs a job, the page follows it live.

Needs the ``playwright`` package and Debian's Chromium at ``/usr/bin/chromium``
(``playwright install`` is not used); skipped with the reason when either is missing.
"""

import itertools
import shutil
import signal
import time
from pathlib import Path

import pytest

from async_queue import Status, schedule
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, make_user

APP_STATIC = Path(__file__).resolve().parents[2] / "async_queue" / "static"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install playwright)"
)
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)",
)


@pytest.fixture
def dashboard_server(live_server, settings):
    """The live server, with a fast password hasher for the login."""
    server = live_server
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return server


@pytest.mark.django_db(transaction=True)
def test_a_running_job_progresses_live_and_stops_polling_when_done(
    dashboard_server, start_worker, tmp_path
):
    make_user("admin", superuser=True, password="pw")
    job = schedule(
        "tests.testapp.dashboard_tasks.count_slowly", kwargs={"steps": 40, "delay": 0.25}
    )
    base = dashboard_server.url
    row_url = f"{base}/jobs/{job.pk}/row/?shown="
    polls: list[float] = []
    seen: list[float] = []
    seen_on_job_page: list[float] = []
    worker = None
    began = time.monotonic()
    # No ORM calls inside this block: Playwright's event loop makes Django treat the
    # thread as async.
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 720})
            page = context.new_page()
            page.on(
                "request",
                lambda r: polls.append(time.monotonic()) if r.url.startswith(row_url) else None,
            )
            # Sign in before the job runs: on SQLite the job holds the write lock.
            page.goto(f"{base}/admin/login/?next=/jobs/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", "pw")
            page.click("input[type=submit]")
            page.wait_for_url(f"{base}/jobs/")
            assert page.evaluate("typeof htmx") == "object", "htmx did not load"
            job_page = context.new_page()  # the job's own page, in a second tab
            job_page.goto(f"{base}/jobs/{job.pk}/")

            worker = start_worker("--forever", "--sleep", "0.2")
            row = page.locator(f"#job-{job.pk}")
            live = job_page.locator(f"#job-{job.pk}-live")
            deadline = time.monotonic() + 40
            while min(len(seen), len(seen_on_job_page)) < 3 and time.monotonic() < deadline:
                for values, where in ((seen, row), (seen_on_job_page, live)):
                    bar = where.locator("progress")
                    value = bar.get_attribute("value", timeout=1000) if bar.count() else None
                    if value is not None and (not values or float(value) != values[-1]):
                        values.append(float(value))
                if len(seen) == 2 and not (tmp_path / "dashboard-running.png").exists():
                    page.screenshot(path=tmp_path / "dashboard-running.png", full_page=True)
                page.wait_for_timeout(150)
            for values in (seen, seen_on_job_page):
                assert len(values) >= 2, f"the progress bar did not advance: {values}"
                assert all(a < b for a, b in itertools.pairwise(values)), values
            assert row.locator(".aq-progress-message").inner_text().startswith("step ")
            assert "ETA" in row.locator(".aq-progress-times").inner_text()

            sync_api.expect(row.locator(".aq-status")).to_have_text("Succeeded", timeout=40_000)
            assert row.get_attribute("hx-trigger") is None
            # the counts followed the transitions (they are not polled)
            succeeded = page.locator('#job-counts [data-status="succeeded"] .aq-count-value')
            sync_api.expect(succeeded).to_have_text("1")
            running = page.locator('#job-counts [data-status="running"] .aq-count-value')
            sync_api.expect(running).to_have_text("0")
            assert row.locator("progress").count() == 0
            polls_at_end = len(polls)
            page.wait_for_timeout(2500)
            assert len(polls) == polls_at_end, "the row kept polling after the job ended"
            page.screenshot(path=tmp_path / "dashboard.png", full_page=True)

            # The job page ended too, and its final answer brought the result and timeline.
            sync_api.expect(live.locator(".aq-status")).to_have_text("Succeeded")
            assert live.get_attribute("hx-trigger") is None
            sync_api.expect(job_page.locator("#job-result")).to_be_visible()
            sync_api.expect(job_page.locator("#job-result pre")).to_have_text("40")
            sync_api.expect(job_page.locator("#job-timeline")).to_contain_text("Succeeded")
            job_page.screenshot(path=tmp_path / "job.png", full_page=True)
        finally:
            browser.close()

    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.stderr
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    assert job.result == 40
    assert (tmp_path / "dashboard.png").stat().st_size > 0
    print(f"\nbrowser test: {time.monotonic() - began:.1f}s, screenshots in {tmp_path}")
