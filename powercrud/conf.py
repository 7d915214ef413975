"""The one place that reads ``settings.POWERCRUD``, a dict with one key:

- ``MAX_SELECTION`` (default 10,000): most rows one user may select in one list;
  selecting past it is refused, not truncated.

Values are read on every access, so ``override_settings`` works in tests.
``powercrud.checks`` validates them (``powercrud.E005``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

SETTING_NAME = "POWERCRUD"
DEFAULTS: dict[str, Any] = {"MAX_SELECTION": 10_000}


def configured() -> Any:
    """``settings.POWERCRUD`` as the project wrote it (``{}`` when it is not set)."""
    return getattr(settings, SETTING_NAME, {})


class PowerCRUDSettings:
    """Attribute access to ``settings.POWERCRUD`` with the defaults filled in."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown {SETTING_NAME} setting {name!r}.")
        value = configured()
        return value.get(name, DEFAULTS[name]) if isinstance(value, dict) else DEFAULTS[name]


powercrud_settings = PowerCRUDSettings()
