"""The one place that reads ``settings.POWERCRUD``.

Values are read on every access, so ``override_settings`` works in tests. Each
setting has a typed default (``SETTINGS``), which a system check can validate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings


@dataclass(frozen=True)
class Setting:
    default: Any
    types: tuple[type, ...]
    help: str


SETTINGS: dict[str, Setting] = {
    "MAX_SELECTION": Setting(
        10_000,
        (int,),
        "Most rows one user may select in one list; selecting past it is refused, not truncated.",
    ),
}


class PowercrudSettings:
    """Attribute access to the POWERCRUD settings, with defaults filled in."""

    def __getattr__(self, name: str) -> Any:
        try:
            setting = SETTINGS[name]
        except KeyError:
            raise AttributeError(f"Unknown POWERCRUD setting {name!r}.") from None
        return self.raw().get(name, setting.default)

    @staticmethod
    def raw() -> dict[str, Any]:
        value = getattr(django_settings, "POWERCRUD", None)
        return value if isinstance(value, dict) else {}


powercrud_settings = PowercrudSettings()
