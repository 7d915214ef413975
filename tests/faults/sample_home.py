"""Run by row 31's test in a subprocess with the sample project's settings.

Migrates a fresh SQLite file (``SAMPLE_SQLITE``), writes jobs of two users and
of nobody, and prints as JSON what the home page shows each kind of visitor.
"""

from __future__ import annotations

import json
import re

import django


def main() -> None:
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from async_queue import Job, Status

    call_command("migrate", verbosity=0)
    admin = User.objects.create_user("admin", password="x", is_staff=True, is_superuser=True)
    alice = User.objects.create_user("alice", password="x")
    bob = User.objects.create_user("bob", password="x")
    for user, status, error in [
        (alice, Status.FAILED, "alice-secret-error"),
        (alice, Status.SUCCEEDED, ""),
        (bob, Status.FAILED, "bob-secret-error"),
        (None, Status.QUEUED, ""),
    ]:
        who = user.username if user else "nobody"
        Job.objects.create(
            name=f"library.tasks.job_of_{who}", status=status, user=user, last_error=error
        )
    seen = {}
    for visitor in (None, alice, bob, admin):
        client = Client(HTTP_HOST="localhost")
        if visitor is not None:
            client.force_login(visitor)
        page = client.get("/")
        content = page.content.decode()
        seen[visitor.username if visitor else "anonymous"] = {
            "status": page.status_code,
            "jobs": sorted(set(re.findall(r"library\.tasks\.job_of_(\w+)", content))),
            "errors": sorted(set(re.findall(r"(\w+)-secret-error", content))),
            "sign_in": bool(re.search(r'href="/admin/login/\?next=%2F">sign in', content)),
            "counts": {
                status: count
                for count, status in re.findall(
                    r"<strong>(\d+\+?)</strong><a class=\"status status-(\w+)\"", content
                )
            },
        }
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
