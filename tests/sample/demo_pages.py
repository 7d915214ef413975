"""Run by test_demo_pages.py in a subprocess with the sample project's settings.

On a fresh SQLite file (``SAMPLE_SQLITE``): seeds the demo as ``./demo`` does, presses
the home page's three buttons as a signed-in visitor would (with CSRF checks on), runs
the due jobs, and prints as JSON what the pages answered and how the jobs ended.
"""

from __future__ import annotations

import json
import re
import sys

import django


def csrf_token(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def main() -> None:
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from library.models import BigBook, Book

    from async_queue import Job

    big_books = int(sys.argv[1])
    call_command("migrate", verbosity=0)
    call_command("seed_demo", bigbook=big_books, verbosity=0)
    seen: dict[str, object] = {}

    anonymous = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    home = anonymous.get("/").content.decode()
    seen["anonymous_buttons"] = "Start a slow job" in home
    seen["anonymous_sign_in"] = 'href="/admin/login/?next=%2F">sign in' in home
    refused = Client(HTTP_HOST="localhost").post("/demo/slow-job/")  # past CSRF: login
    seen["anonymous_post"] = [refused.status_code, refused.headers.get("Location", "")]

    visitor = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    visitor.force_login(User.objects.get(username="admin"))
    home = visitor.get("/").content.decode()
    seen["buttons"] = [b for b in ("slow", "flaky", "bulk") if f'class="demo-{b}"' in home]
    seen["watch_hint"] = 'href="/jobs/">/jobs/</a>' in home
    token = csrf_token(home)
    seen["without_csrf"] = visitor.post("/demo/slow-job/").status_code

    prices = list(Book.objects.order_by("pk").values_list("price", flat=True))
    started = {}
    for name in ("slow", "flaky"):
        answer = visitor.post(f"/demo/{name}-job/", {"csrfmiddlewaretoken": token})
        started[name] = answer.headers["Location"]
    slow = Job.objects.get(pk=started["slow"].rpartition("=")[2])
    page = visitor.get(started["slow"]).content.decode()
    seen["started"] = {
        "location": started["slow"] == f"/?started={slow.pk}",
        "shown": f"Job #{slow.pk} <code>library.tasks.reprice_books</code>" in page,
        "job_page_link": f'href="/jobs/{slow.pk}/"' in page,
    }
    form = re.search(r'<form method="post" action="/demo/bulk-edit/".*?</form>', home, re.S)
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(0)))
    bulk = visitor.post("/demo/bulk-edit/", {**fields, "status": "out_of_print"})
    bulk_job = Job.objects.order_by("-pk").first()
    seen["bulk"] = {
        "status": bulk.status_code,
        "location": bulk.headers.get("Location"),
        "job": bulk_job.pk,
        "name": bulk_job.name,
        "rows": len(bulk_job.kwargs["pks"]),
        "page": visitor.get(bulk.headers.get("Location", "/")).status_code,
    }

    call_command("flush_queue", verbosity=0)
    flaky = Job.objects.get(pk=started["flaky"].rpartition("=")[2])
    seen["jobs"] = {
        job.name: [job.status, job.attempts, job.max_attempts]
        for job in Job.objects.filter(pk__in=[slow.pk, flaky.pk, bulk_job.pk])
    }
    seen["flaky_error"] = flaky.last_error.splitlines()[-1] if flaky.last_error else ""
    seen["repriced"] = list(Book.objects.order_by("pk").values_list("price", flat=True)) != prices
    seen["out_of_print"] = BigBook.objects.filter(status="out_of_print").count()
    seen["books"] = Book.objects.count()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
