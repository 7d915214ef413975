"""Row 28: credentials inside values and error messages are redacted on every page.

Row 17 plants values under secret-looking key names. This row plants what key
names do not give away, and key names that the old markers missed: a URL with a
password (in a value, a DSN string and an exception message), libpq-style
``password=`` pairs, PEM private keys under any key, ``Bearer`` tokens, a token
in a query string, values under ``auth``, ``credentials`` and ``dsn`` (while
``author`` stays visible), and a project's own secrets through
``REDACT_KEYS`` and ``REDACT_PATTERNS``. A real worker runs the jobs (one echoes
everything into its result, one fails with credentials in its message); every
page of row 17's matrix is then read.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from async_queue import Job, JobError, Status, schedule
from async_queue.permissions import REDACTED
from tests.conftest import login, make_user
from tests.faults.conftest import report
from tests.faults.test_secrets import QUICKBOOK, pages, run_to_the_end

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.crudapp.bulk_urls")]

PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
PEM = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\nq1w2e3r4t5y6\n-----END PRIVATE KEY-----\n"
CREDENTIALS = {
    "url password": "url-pw-7311",
    "libpq password": "dsn-pw-3390",
    "PEM body": PEM_BODY,
    "auth": "auth-val-8812",
    "credentials": "cred-val-2207",
    "dsn": "dsn-val-5150",
    "bearer token": "bearer-tok-4410",
    "query token": "qs-tok-9901",
    "error URL password": "err-pw-6620",
    "REDACT_KEYS": "DE89370400440532013000",
    "REDACT_PATTERNS": "sk_live_abcdef123456",
}
EXTRA = {"REDACT_KEYS": ["iban"], "REDACT_PATTERNS": [r"sk_live_\w+"]}


def schedule_jobs(owner: User) -> dict[str, Job]:
    c = CREDENTIALS
    values = {
        "db_url": f"postgres://app:{c['url password']}@db.internal:5432/app",
        "database": f"host=db user=app password={c['libpq password']} dbname=app",
        "ssh": PEM,  # a PEM block under a key that says nothing
        "private_key": PEM,
        "auth": c["auth"],
        "credentials": {"user": "app", "value": c["credentials"]},
        "dsn": c["dsn"],
        "headers": {"X-Forwarded": f"Bearer {c['bearer token']}"},
        "callback": f"https://hooks.example.com/x?token={c['query token']}&page=2",
        "customer_iban": c["REDACT_KEYS"],
        "note": f"charged with {c['REDACT_PATTERNS']}",
        "author": "Ann Author",
    }
    message = (
        f"could not connect to postgres://app:{c['error URL password']}@db.internal/app with {PEM}"
    )
    leak = schedule(
        "tests.testapp.tasks.fail",
        [message],
        meta={
            "powercrud": {"view": QUICKBOOK, "action": "edit", "count": 0},
            "source": values["db_url"],
        },
        max_attempts=1,
        user=owner,
    )
    echo = schedule("tests.testapp.tasks.echo", [values["db_url"]], values, user=owner)
    return {"leak": leak, "echo": echo}


def test_credentials_in_values_and_errors_are_redacted_everywhere(start_worker, settings):
    """Row 28: none of the planted credentials on any page; ``author`` still shown."""
    root = make_user("root", superuser=True)
    jobs = schedule_jobs(root)
    run_to_the_end(jobs, start_worker)
    assert jobs["leak"].status == Status.FAILED
    assert jobs["echo"].status == Status.SUCCEEDED
    # Stored as they are: redaction is what pages show, not what the row keeps.
    assert CREDENTIALS["error URL password"] in JobError.objects.get(job=jobs["leak"]).traceback

    settings.ASYNC_QUEUE = {**settings.ASYNC_QUEUE, **EXTRA}
    client = login(Client(), root)
    leaking: dict[str, list[str]] = {}
    redacted_on = []
    checked = pages(jobs)
    for label, (url, headers) in checked.items():
        response = client.get(url, **headers)
        assert response.status_code in (200, 286), (label, response.status_code)
        content = response.content.decode()
        if found := [name for name, value in CREDENTIALS.items() if value in content]:
            leaking[label] = found
        if REDACTED in content:
            redacted_on.append(label)
    assert leaking == {}, leaking
    detail = client.get(checked["dashboard detail echo"][0]).content.decode()
    assert "&quot;author&quot;: &quot;Ann Author&quot;" in detail
    assert f"postgres://app:{REDACTED}@db.internal:5432/app" in detail
    assert f"-----BEGIN PRIVATE KEY-----{REDACTED}-----END PRIVATE KEY-----" in detail
    for label in ("dashboard detail leak", "dashboard detail echo", "admin job echo"):
        assert label in redacted_on, f"{label} shows no {REDACTED}"
    report(
        28,
        "credentials in values",
        credentials_planted=len(CREDENTIALS),
        pages_checked=len(checked),
        pages_leaking=len(leaking),
        redacted_on=len(redacted_on),
    )
