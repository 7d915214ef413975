from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class LibraryConfig(AppConfig):
    name = "library"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .signals import enable_sqlite_wal

        post_migrate.connect(enable_sqlite_wal, sender=self, dispatch_uid="library-sqlite-wal")
