"""Settings of the sample project: SQLite in var/ by default, PostgreSQL with SAMPLE_DB=postgres.

For local use only (DEBUG on, a public SECRET_KEY).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "sample-project-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "sample.urls"
WSGI_APPLICATION = "sample.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_filters",
    "async_queue",
    "powercrud",
    "library",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # 503 "busy, try again" instead of 500/400 while a job holds SQLite's write lock.
    "async_queue.middleware.DatabaseBusyMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

if os.environ.get("SAMPLE_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("SAMPLE_PG_NAME", "sample"),  # the tests use their own
            "USER": os.environ.get("ASYNC_QUEUE_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("ASYNC_QUEUE_PG_PASSWORD", ""),
            "HOST": os.environ.get("ASYNC_QUEUE_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("ASYNC_QUEUE_PG_PORT", "5432"),
        }
    }
else:
    # WAL mode (readers never wait for the worker's write transaction) is set once
    # after migrating, by library's post_migrate receiver: it persists in the file.
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            # SAMPLE_SQLITE: another file (the tests use a temporary one).
            "NAME": os.environ.get("SAMPLE_SQLITE") or BASE_DIR / "var" / "db.sqlite3",
            "OPTIONS": {"timeout": 20},
        }
    }

ASYNC_QUEUE = {"POLL_INTERVAL": 0.5}

# How long the home page's slow job runs, and how long the CRUD pages' bulk edits are
# paced to take in a worker (./demo --help). On SQLite a running job holds the write
# lock, and other writers wait up to the busy timeout (20 s above): keep both below it.
DEMO_SLOW_SECONDS = float(os.environ.get("DEMO_SLOW_SECONDS", "12"))
DEMO_BULK_SECONDS = float(os.environ.get("DEMO_BULK_SECONDS", "8"))

# The home page polls every 2 seconds: keep the request log out of the terminal so the
# worker's lines stay readable. 4xx answers are the demo working (a 409 for a row a job
# holds, a 404 for the favicon): only errors show. The worker prints a line per
# attempt itself, so the lifecycle event log (a job's failure as a warning) would only
# repeat it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django.server": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django.request": {"level": "ERROR"},
        "async_queue": {"handlers": ["console"], "level": "INFO"},
        "async_queue.events": {"level": "ERROR"},
    },
}

# The dashboard sends anonymous users to log in; the admin's login page serves.
LOGIN_URL = "/admin/login/"
