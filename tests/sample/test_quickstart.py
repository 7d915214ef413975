"""A new project set up as the README's Quickstart says: no 404, no warning, a job runs.

``django-admin startproject`` in a temporary directory; the Quickstart's ``settings.py``
and ``urls.py`` blocks appended as they are and its WAL command run as it is; then an
app of the test's own with a declared job and a ``PowerCRUDView`` (and no base.html).
The checks pass without a warning, an anonymous visitor of ``/jobs/`` is sent to a
login page that exists, the job runs in ``flush_queue``, and powercrud's list renders.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

HERE = Path(__file__).resolve().parent

APP = {
    "__init__.py": "",
    "migrations/__init__.py": "",
    "models.py": """
from django.db import models


class Book(models.Model):
    title = models.CharField(max_length=100)
    status = models.CharField(max_length=10, default="draft")

    def __str__(self):
        return self.title
""",
    "tasks.py": """
from async_queue import job

from .models import Book


@job
def count_books():
    return Book.objects.count()
""",
    "views.py": """
from powercrud import PowerCRUDView

from .models import Book


class BookView(PowerCRUDView):
    model = Book
    fields = ["title", "status"]
    bulk_fields = ["status"]
""",
}

# Not the Quickstart's: the test's own app, and powercrud as its README section says.
SETTINGS_TAIL = '\nINSTALLED_APPS += ["django_filters", "powercrud", "shop"]\n'
URLS_TAIL = "\nfrom shop.views import BookView\n\nurlpatterns += BookView.get_urls()\n"


def quickstart() -> str:
    """The README's Quickstart section."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Quickstart")
    return text[start : text.index("\n## ", start)]


def block(section: str, first_line: str) -> str:
    """The code block of ``section`` whose first line starts with ``first_line``."""
    for code in re.findall(r"```\w*\n(.*?)```", section, re.S):
        if code.startswith(first_line):
            return code
    raise AssertionError(f"The Quickstart has no code block starting with {first_line!r}.")


def run(args: list[str], project: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        args, cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_a_new_project_set_up_as_the_quickstart_says_works(tmp_path):
    section = quickstart()
    project = tmp_path / "mysite"
    project.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mysite.settings",
        "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)]),
        "PYTHONWARNINGS": "error",
    }
    manage = [sys.executable, "manage.py"]
    bare = {k: v for k, v in env.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    run([sys.executable, "-m", "django", "startproject", "mysite", "."], project, bare)
    with open(project / "mysite" / "settings.py", "a") as settings:
        settings.write("\n" + block(section, "# settings.py") + SETTINGS_TAIL)
    with open(project / "mysite" / "urls.py", "a") as urls:
        urls.write("\n" + block(section, "# urls.py") + URLS_TAIL)
    for name, text in APP.items():
        (project / "shop" / name).parent.mkdir(parents=True, exist_ok=True)
        (project / "shop" / name).write_text(text.lstrip())

    # No warning: W030 (SQLite without DatabaseBusyMiddleware) among them.
    run([*manage, "check", "--fail-level", "WARNING"], project, env)
    run([*manage, "makemigrations", "shop", "--verbosity", "0"], project, env)
    commands = block(section, "python manage.py migrate").splitlines()
    wal = next(line for line in commands if "journal_mode=WAL" in line)
    for line in ("python manage.py migrate", wal):
        run([sys.executable, *shlex.split(line)[1:]], project, env)

    script = [sys.executable, str(HERE / "quickstart_project.py")]
    before = json.loads(run([*script, "before"], project, env))
    assert before["anonymous_dashboard"] == [302, "/admin/login/?next=/jobs/"]
    assert before["login_page"] == 200  # not Django's default /accounts/login/, a 404 here
    assert before["staff_dashboard"] == 200
    assert before["books_page"] == 200  # the project has no base.html: powercrud's frame
    assert before["books_frame"] is True
    assert before["books_listed"] >= 3
    assert before["journal_mode"] == "wal"
    assert before["timeout"] == 20

    run([*manage, "flush_queue"], project, env)
    after = json.loads(run([*script, "after"], project, env))
    assert after == {"status": "succeeded", "result": 3, "job_page": 200}
