"""The demo's home page buttons: a slow job, a failing-then-retrying job, a bulk edit.

The sample project runs in a subprocess with its own settings, on a fresh database
(a SQLite file, or on PostgreSQL runs a database of its own), with short demo
durations; the jobs run in ``flush_queue`` there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

SAMPLE = ROOT / "test-projects" / "sample"
BIG_BOOKS = 150


@pytest.fixture
def sample_database(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment that points the sample project at a fresh database."""
    if os.environ.get("ASYNC_QUEUE_TEST_DB", "sqlite") != "postgres":
        yield {"SAMPLE_DB": "sqlite", "SAMPLE_SQLITE": str(tmp_path / "sample.sqlite3")}
        return
    import psycopg

    name = f"sample_{os.environ.get('ASYNC_QUEUE_PG_NAME', 'async_queue')}"
    server = psycopg.connect(
        dbname="postgres",
        user=os.environ.get("ASYNC_QUEUE_PG_USER", "postgres"),
        password=os.environ.get("ASYNC_QUEUE_PG_PASSWORD", ""),
        host=os.environ.get("ASYNC_QUEUE_PG_HOST", "127.0.0.1"),
        port=os.environ.get("ASYNC_QUEUE_PG_PORT", "5432"),
        autocommit=True,
    )
    with server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.execute(f'CREATE DATABASE "{name}"')
        try:
            yield {"SAMPLE_DB": "postgres", "SAMPLE_PG_NAME": name}
        finally:
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_home_page_buttons_start_jobs_and_say_where_to_watch_them(sample_database):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sample.settings",
        "PYTHONPATH": os.pathsep.join([str(SAMPLE), str(ROOT)]),
        **sample_database,
        "DEMO_SLOW_SECONDS": "0.2",
        "DEMO_BULK_SECONDS": "0.2",
    }
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("demo_pages.py")), str(BIG_BOOKS)],
        env=env,
        cwd=SAMPLE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["anonymous_buttons"] is False
    assert seen["anonymous_sign_in"] is True
    assert seen["anonymous_post"] == [302, "/admin/login/?next=/demo/slow-job/"]
    assert seen["buttons"] == ["slow", "flaky", "bulk"]
    assert seen["watch_hint"] is True
    assert seen["without_csrf"] == 403
    assert seen["started"] == {"location": True, "shown": True, "job_page_link": True}
    # Enough rows for a job: the visitor lands on powercrud's progress page for it.
    job = seen["bulk"]["job"]
    assert seen["bulk"] == {
        "status": 302,
        "location": f"/sample/bigbooks/bulk-status/{job}/",
        "job": job,
        "name": "library.tasks.paced_bulk_edit",
        "rows": BIG_BOOKS,
        "page": 200,
    }
    # The flaky job failed its first attempt and waits 3 s for its retry (of 3 attempts).
    assert seen["jobs"] == {
        "library.tasks.reprice_books": ["succeeded", 1, 5],
        "library.tasks.flaky_import": ["queued", 1, 3],
        "library.tasks.paced_bulk_edit": ["succeeded", 1, 1],
    }
    assert "ConnectionError: upstream not ready (attempt 1)" in seen["flaky_error"]
    assert seen["repriced"] is True
    assert seen["out_of_print"] == BIG_BOOKS
    # Over powercrud's bulk threshold (100): "Select all matching" on books makes a job too.
    assert seen["books"] == 200
