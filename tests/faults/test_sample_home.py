"""Row 31: the sample project's home page shows jobs only to those the dashboard shows them.

The page lists job names and errors; an anonymous visitor sees none (and a
sign-in link), a user only their own, staff every job. The sample project
runs in a subprocess with its own settings, on a fresh SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.faults.conftest import report

SAMPLE = ROOT / "test-projects" / "sample"


def test_the_home_page_shows_each_visitor_only_the_jobs_they_may_see(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sample.settings",
        "PYTHONPATH": os.pathsep.join([str(SAMPLE), str(ROOT)]),
        "SAMPLE_DB": "sqlite",
        "SAMPLE_SQLITE": str(tmp_path / "sample.sqlite3"),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "faults" / "sample_home.py")],
        env=env,
        cwd=SAMPLE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["anonymous"] == {
        "status": 200,
        "jobs": [],
        "errors": [],
        "sign_in": True,
        "counts": {},
    }
    assert seen["alice"]["jobs"] == ["alice"]
    assert seen["alice"]["errors"] == ["alice"]
    assert seen["alice"]["counts"] == {
        "queued": "0", "running": "0", "succeeded": "1", "failed": "1", "cancelled": "0"
    }  # fmt: skip
    assert seen["bob"]["jobs"] == ["bob"]
    assert seen["bob"]["errors"] == ["bob"]
    assert seen["admin"]["jobs"] == ["alice", "bob", "nobody"]
    assert seen["admin"]["errors"] == ["alice", "bob"]
    assert seen["admin"]["counts"]["failed"] == "2"
    assert not any(seen[who]["sign_in"] for who in ("alice", "bob", "admin"))
    report(
        31,
        "sample home page",
        visitors=4,
        mismatches=0,
        seen={who: seen[who]["jobs"] for who in seen},
    )
