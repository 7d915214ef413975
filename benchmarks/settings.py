"""Minimal Django settings for ``python -m benchmarks.queue`` (PostgreSQL only).

The benchmark sets ``ASYNC_QUEUE_BENCH_DB_NAME`` before Django starts, and the
worker subprocesses it launches inherit it. ``CONN_MAX_AGE`` is 0 on purpose: the
benchmark checks that a worker keeps its connection across jobs all the same.
"""

from __future__ import annotations

import os

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "async_queue",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("ASYNC_QUEUE_BENCH_DB_NAME", "async_queue_bench"),
        "USER": os.environ.get("ASYNC_QUEUE_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("ASYNC_QUEUE_PG_PASSWORD", ""),
        "HOST": os.environ.get("ASYNC_QUEUE_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("ASYNC_QUEUE_PG_PORT", "5432"),
        "CONN_MAX_AGE": 0,
    }
}

ASYNC_QUEUE = {
    # Declared by exact name: benchmarks.jobs imports nothing, so that the raw
    # psycopg loops can share its SQL without importing Django.
    "JOBS": [
        "benchmarks.jobs.noop",
        "benchmarks.jobs.bump",
        "benchmarks.jobs.backend_pid",
    ],
}
