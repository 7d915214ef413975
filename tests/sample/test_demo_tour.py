"""The demo's tour in a real browser: ``./demo`` itself, then what the README shows.

``./demo`` runs (with this run's virtualenv, a free port and a temporary directory for
its database and logs). Signed in as admin / admin on its home page, the tour starts
the slow job with a button and watches its progress there and on the dashboard,
starts the failing-then-retrying job, then on the big books list sorts and filters,
opens an edit with errors, selects every matching row and bulk edits them: a
background job whose progress modal follows it, while another tab trying to edit
one of those rows is refused with the conflict notice. Then the demo is stopped.

The README's screenshots come from here: ``README_SCREENSHOTS=1`` writes them into
docs/screenshots (otherwise they go to the test's temporary directory).

Needs the ``playwright`` package and Debian's Chromium at ``/usr/bin/chromium``
(``playwright install`` is not used); skipped with the reason when either is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT

VIEWPORT = {"width": 1280, "height": 800}
SLOW_SECONDS = 8  # the slow job: long enough to see it on two pages
BULK_SECONDS = 8  # the bulk edit: long enough for the conflict in another tab
VENV_PYTHON = Path(sys.prefix) / "bin" / "python"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install playwright)"
)
expect = sync_api.expect
pytestmark = [
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None,
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)",
    ),
    pytest.mark.skipif(
        not VENV_PYTHON.exists(), reason=f"not run from a virtualenv ({VENV_PYTHON} is missing)"
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_processes(sid: int) -> list[int]:
    """The processes of session ``sid`` (the demo's server, worker and helpers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after "pid (comm)": state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


class Demo:
    """``./demo`` in a session of its own, its output in a file."""

    def __init__(self, directory: Path, port: int) -> None:
        self.output = directory / "demo.out"
        self.leftovers: list[bytes] = []
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DJANGO_SETTINGS_MODULE", "SAMPLE_DB", "SAMPLE_SQLITE")
        }
        env.update(
            DEMO_VENV=sys.prefix,
            DEMO_PORT=str(port),
            DEMO_VAR=str(directory / "var"),
            DEMO_SLOW_SECONDS=str(SLOW_SECONDS),
            DEMO_BULK_SECONDS=str(BULK_SECONDS),
        )
        with open(self.output, "w") as out:
            self.process = subprocess.Popen(
                [str(ROOT / "demo")],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.output.read_text()

    def wait_for(self, text: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"./demo never printed {text!r}:\n{self.text()}")
            time.sleep(0.2)

    def stop(self) -> int | None:
        """Stop it as Ctrl-C would; kill what is left if that does not end it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        # Its output readers end a moment after what they read from.
        deadline = time.monotonic() + 5
        while (leftovers := session_processes(self.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.leftovers = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in leftovers]
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return None if leftovers else self.process.returncode


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    if os.environ.get("README_SCREENSHOTS"):
        return ROOT / "docs" / "screenshots"
    return tmp_path


def progress_value(where) -> float | None:
    bar = where.locator("progress")
    if not bar.count():
        return None
    value = bar.first.get_attribute("value", timeout=1000)
    return None if value is None else float(value)


def settled(page) -> None:
    """Wait until htmx has finished swapping: new content gets its listeners on settling."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, "
        ".htmx-added')"
    )


def test_the_demo_tour_shows_a_slow_job_and_a_bulk_edit_progress_live(tmp_path, shots):
    demo = Demo(tmp_path, free_port())
    began = time.monotonic()
    try:
        demo.wait_for("The demo runs at", 120)
        base = demo.text().split("The demo runs at ", 1)[1].split()[0].rstrip("/")
        walk_the_tour(base, tmp_path, shots)
    finally:
        status = demo.stop()
    output = demo.text()
    # Stopped by the Ctrl-C, and everything it started ended with it.
    assert status == 130, f"{output}\nleft running: {demo.leftovers}"
    assert "== stopped" in output
    lines = output.splitlines()
    steps = [line for line in lines if line.startswith("== ")]
    assert steps[:5] == [
        steps[0],  # Python and Django versions in the virtualenv
        f"== migrating the database (SQLite, {tmp_path / 'var' / 'db.sqlite3'})",
        "== seeding: the superuser admin / admin, authors, books, 5000 big books, "
        "and a few demo jobs",
        f"== starting the worker (its lines: 'worker |' below, and {tmp_path}/var/worker.log)",
        f"== starting the web server (its log: {tmp_path}/var/server.log)",
    ]
    assert not [line for line in lines if "warning" in line.lower()], output
    print(f"\ndemo tour: {time.monotonic() - began:.1f}s, screenshots in {shots}")


def walk_the_tour(base: str, tmp_path: Path, shots: Path) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(15_000)
        home = context.new_page()
        try:
            slow_job(base, context, home, shots)
            flaky = flaky_job(home)
            bulk_edit(base, context, shots)
            flaky.goto(flaky.url)
            expect(flaky.locator(".aq-status").first).to_have_text("Succeeded", timeout=30_000)
            expect(flaky.locator("#job-timeline")).to_contain_text("ConnectionError")
        except BaseException:
            for number, page in enumerate(context.pages):
                page.screenshot(path=tmp_path / f"failure-{number}.png", full_page=True)
            raise
        finally:
            browser.close()


def slow_job(base: str, context, home, shots: Path) -> None:
    """Sign in, press "Start a slow job", watch its progress on the home page and the dashboard."""
    home.goto(f"{base}/")
    assert home.evaluate("typeof htmx") == "object", "htmx did not load"
    home.get_by_role("link", name="sign in").click()
    home.fill("#id_username", "admin")
    home.fill("#id_password", "admin")
    home.click("input[type=submit]")
    home.wait_for_url(f"{base}/")
    # Wait for the start-up batch (quick, flaky and failing jobs) to end: on SQLite a
    # running job holds the write lock, and the dashboard's counts settle.
    for status, count in (("failed", "1"), ("queued", "0"), ("running", "0")):
        strong = home.locator(f".counts li:has(a.status-{status}) strong")
        expect(strong).to_have_text(count, timeout=30_000)
    home.locator("button.demo-slow").click()
    home.wait_for_url(f"{base}/?started=*")
    job_id = home.url.rpartition("=")[2]
    dashboard = context.new_page()  # its rows follow the jobs that were there when it loaded
    dashboard.goto(f"{base}/jobs/")
    started = home.locator("#started")
    expect(started).to_contain_text(f"Job #{job_id} library.tasks.reprice_books")
    expect(started.get_by_role("link", name=f"its page, /jobs/{job_id}/")).to_be_visible()
    on_home: list[float] = []
    on_dashboard: list[float] = []
    row = dashboard.locator(f"#job-{job_id}")
    deadline = time.monotonic() + SLOW_SECONDS + 20
    while min(len(on_home), len(on_dashboard)) < 2 and time.monotonic() < deadline:
        for values, where, page, name in (
            (on_home, started, home, "home.png"),
            (on_dashboard, row, dashboard, "dashboard-running.png"),
        ):
            value = progress_value(where) if where.count() else None
            if value is not None and (not values or value != values[-1]):
                values.append(value)
                if len(values) == 2:
                    page.screenshot(path=shots / name)
        home.wait_for_timeout(200)
    assert len(on_home) >= 2, f"no progress seen on the home page: {on_home}"
    assert len(on_dashboard) >= 2, f"no progress seen on the dashboard: {on_dashboard}"
    assert on_home == sorted(on_home)
    assert on_dashboard == sorted(on_dashboard)

    expect(started.locator(".status")).to_have_text("succeeded", timeout=30_000)
    job_page = context.new_page()
    job_page.goto(f"{base}/jobs/{job_id}/")
    expect(job_page.locator("#job-result")).to_contain_text("total_after")
    expect(job_page.locator("#job-timeline")).to_contain_text("Succeeded")
    job_page.screenshot(path=shots / "job.png")
    job_page.close()
    dashboard.close()


def flaky_job(home):
    """Press "Start a failing, then retrying job"; its page, to look at once it is done."""
    home.locator("button.demo-flaky").click()
    home.wait_for_url("**/?started=*")
    home.locator("#started").get_by_role("link", name="its page").click()
    home.wait_for_url("**/jobs/*/")
    return home


def bulk_edit(base: str, context, shots: Path) -> None:
    """Sort and filter big books, an edit with errors, then a bulk edit as a job."""
    page = context.new_page()
    page.goto(f"{base}/sample/bigbooks/")
    assert page.evaluate("typeof htmx") == "object", "htmx did not load"
    page.locator("#pc-filters #id_status").select_option("draft")
    page.wait_for_url("**status=draft**")
    settled(page)
    page.click("th.pc-col-price a")
    page.wait_for_url("**o=price**")
    expect(page.locator("th.pc-col-price")).to_have_attribute("aria-sort", "ascending")
    settled(page)
    page.screenshot(path=shots / "filtered.png")
    drafts = int(page.locator(".pc-count").inner_text().split()[0].replace(",", ""))
    assert drafts >= 100  # enough for powercrud's bulk threshold

    modal = page.locator("#pc-modal")
    first = page.locator("#pc-results tbody tr").first
    first.get_by_role("link", name="Edit").click()
    expect(modal).to_be_visible()
    settled(page)
    modal.locator("#id_title").fill("")
    modal.locator("#id_price").fill("1234567890")
    modal.get_by_role("button", name="Save").click()
    expect(modal.locator(".pc-form-field.pc-invalid")).to_have_count(2)
    settled(page)
    page.screenshot(path=shots / "modal-errors.png")
    page.keyboard.press("Escape")
    expect(modal).to_be_hidden()

    toolbar = page.locator(".pc-bulk-toolbar")
    toolbar.locator(".pc-bulk-all").click()
    expect(toolbar.locator(".pc-bulk-count strong")).to_have_text(f"{drafts:,}")
    toolbar.locator(".pc-bulk-edit").click()
    expect(modal.locator("h2")).to_have_text(f"Edit {drafts:,} selected big books")
    modal.locator("#id_status__change").check()
    modal.locator("#id_status").select_option("published")
    expect(modal).to_contain_text("This runs in the background")
    settled(page)
    page.screenshot(path=shots / "bulk-form.png")
    modal.locator(".pc-bulk-apply").click()

    progress = modal.locator(".pc-bulk-progress")
    expect(progress).to_have_attribute("data-state", "running", timeout=30_000)
    percents: list[float] = []
    deadline = time.monotonic() + 10
    while len(percents) < 2 and time.monotonic() < deadline:
        percent = progress.get_attribute("data-percent")
        if percent is not None and (not percents or float(percent) != percents[-1]):
            percents.append(float(percent))
        page.wait_for_timeout(100)
    assert len(percents) >= 2, f"the progress modal did not advance: {percents}"
    page.screenshot(path=shots / "bulk-progress.png")

    # Meanwhile, in another tab: editing one of those rows is refused, the input kept.
    other = context.new_page()
    other.goto(f"{base}/sample/bigbooks/?status=draft&o=price")
    other.locator("#pc-results tbody tr").first.get_by_role("link", name="Edit").click()
    conflict = other.locator("#pc-modal #pc-conflict")
    expect(conflict).to_contain_text("is busy")
    expect(conflict).to_contain_text("started by admin")
    settled(other)
    other.locator("#pc-modal #id_title").fill("Typed while busy")
    other.locator("#pc-modal").get_by_role("button", name="Try again").click()
    expect(conflict).to_contain_text("Nothing was saved: your input is still in the form")
    settled(other)
    other.screenshot(path=shots / "conflict.png")
    other.close()

    done = BULK_SECONDS * 1000 + 30_000
    expect(progress).to_have_attribute("data-state", "succeeded", timeout=done)
    expect(progress).to_contain_text(f"Updated {drafts:,} big books.")
    expect(page.locator(".pc-empty")).to_be_visible()  # no draft left under the filter
    expect(toolbar.locator(".pc-bulk-count strong")).to_have_text("0")
    settled(page)
    page.screenshot(path=shots / "bulk-done.png")
