from __future__ import annotations

import importlib.util

from django.apps import AppConfig


class AsyncQueueConfig(AppConfig):
    name = "async_queue"
    verbose_name = "Job queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            sql,  # noqa: F401  (closes SQLite's side connections when a request ends)
        )
        from .contrib.tracking import checks as tracker_checks  # noqa: F401  (and receivers)

        if importlib.util.find_spec("django.tasks"):  # Django 6.0+
            from .contrib.tasks import backend  # noqa: F401  (sends django.tasks' signals)
