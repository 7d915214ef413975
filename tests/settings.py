"""Settings for the test suite: SQLite by default, PostgreSQL with ASYNC_QUEUE_TEST_DB=postgres.

Worker subprocesses started by the tests use these settings too; the test run
passes them the test database's name in ASYNC_QUEUE_TEST_DB_NAME.
"""

import json
import os
from pathlib import Path
from typing import Any

import django

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "async_queue",
    "tests.testapp",
    "tests.trackerapp",
    "django_filters",
    "powercrud",
    "tests.crudapp",
    "tests.faultapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    # 503 "busy, try again" instead of 500/400 while a job holds SQLite's write lock.
    "async_queue.middleware.DatabaseBusyMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
STATIC_URL = "static/"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

_child_db_name = os.environ.get("ASYNC_QUEUE_TEST_DB_NAME")

if os.environ.get("ASYNC_QUEUE_TEST_DB", "sqlite") == "postgres":
    DATABASES: dict[str, dict[str, Any]] = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _child_db_name or os.environ.get("ASYNC_QUEUE_PG_NAME", "async_queue"),
            "USER": os.environ.get("ASYNC_QUEUE_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("ASYNC_QUEUE_PG_PASSWORD", ""),
            "HOST": os.environ.get("ASYNC_QUEUE_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("ASYNC_QUEUE_PG_PORT", "5432"),
            "TEST": {"NAME": "test_" + os.environ.get("ASYNC_QUEUE_PG_NAME", "async_queue")},
        }
    }
else:
    _db_dir = BASE_DIR / ".pytest-db"
    _db_dir.mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _child_db_name or str(_db_dir / "async_queue.sqlite3"),
            # A file, not :memory:, so that worker subprocesses share it; WAL mode
            # (set once by tests/conftest.py, it persists in the file) lets them read
            # while another connection writes.
            "TEST": {"NAME": str(_db_dir / "test_async_queue.sqlite3")},
            "OPTIONS": {
                "timeout": 20,
                "init_command": "PRAGMA synchronous=NORMAL;",
            },
        }
    }

ASYNC_QUEUE: dict = {
    "BACKOFF_BASE": 0.2,
    "BACKOFF_MAX": 5.0,
    "POLL_INTERVAL": 0.2,
    "RECOVERY_INTERVAL": 0.5,
    "LOCK_RETRY_DELAY": 0.2,
    # Named trackers: jobs pick one with schedule(tracker="bulk") (a TrackedBookView of crudapp).
    "TRACKERS": {
        "bulk": {
            "MODEL": "trackerapp.TaskRecord",
            "FIELDS": {
                "status": "state",
                "progress": "percent",
                "result": "result",
                "user": "owner",
            },
        }
    },
    "HEARTBEAT_INTERVAL": 0.2,
}

# Worker subprocesses of the fault suite may get settings and database OPTIONS of
# their own (JSON): a small WORKER_TIMEOUT, Django's pool, libpq options.
if _extra := os.environ.get("ASYNC_QUEUE_TEST_SETTINGS"):
    ASYNC_QUEUE.update(json.loads(_extra))
if _options := os.environ.get("ASYNC_QUEUE_TEST_DB_OPTIONS"):
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        **json.loads(_options),
    }

if interval := os.environ.get("ASYNC_QUEUE_TEST_PERIODIC"):  # workers of the periodic tests
    ASYNC_QUEUE["PERIODIC"] = [
        {"name": "tick", "function": "tests.testapp.tasks.record_tick", "interval": float(interval)}
    ]

if django.VERSION >= (6, 0):
    # The django.tasks tasks of the backend's tests and of the contract suites ported to
    # it: a worker runs only tasks of installed apps.
    INSTALLED_APPS.append("tests.tasks_contract")
    TASKS = {
        "default": {
            "BACKEND": "async_queue.backends.QueueBackend",
            "QUEUES": ["default", "mail"],
        }
    }
