"""Run by test_quickstart.py inside the project it made (``mysite.settings``).

``python quickstart_project.py before``: what an anonymous visitor and a staff user
get, then a job scheduled; ``after`` (once ``flush_queue`` has run): how it ended.
Each prints one line of JSON.
"""

from __future__ import annotations

import json
import sys

import django


def before() -> dict[str, object]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from shop.models import Book

    from async_queue import schedule

    anonymous = Client(HTTP_HOST="localhost")
    dashboard = anonymous.get("/jobs/")
    login = anonymous.get(dashboard.headers.get("Location", "/accounts/login/"))
    admin = User.objects.create_superuser("admin", "admin@example.com", "unused")
    Book.objects.bulk_create(Book(title=f"Book {n}") for n in range(3))
    job = schedule("shop.tasks.count_books")
    staff = Client(HTTP_HOST="localhost")
    staff.force_login(admin)
    books = staff.get("/book/")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
    return {
        "anonymous_dashboard": [dashboard.status_code, dashboard.headers.get("Location")],
        "login_page": login.status_code,
        "staff_dashboard": staff.get("/jobs/").status_code,
        "books_page": books.status_code,
        "books_frame": books.content.decode().lstrip().lower().startswith("<!doctype html>"),
        "books_listed": books.content.decode().count("Book "),
        "job": job.pk,
        "journal_mode": journal_mode,
        "timeout": connection.settings_dict["OPTIONS"].get("timeout"),
    }


def after() -> dict[str, object]:
    from django.contrib.auth.models import User
    from django.test import Client

    from async_queue import Job

    job = Job.objects.get()
    staff = Client(HTTP_HOST="localhost")
    staff.force_login(User.objects.get(username="admin"))
    page = staff.get(f"/jobs/{job.pk}/")
    return {"status": job.status, "result": job.result, "job_page": page.status_code}


if __name__ == "__main__":
    django.setup()
    print(json.dumps({"before": before, "after": after}[sys.argv[1]]()))
