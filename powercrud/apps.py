from __future__ import annotations

from django.apps import AppConfig


class PowerCRUDConfig(AppConfig):
    name = "powercrud"
    verbose_name = "PowerCRUD"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
