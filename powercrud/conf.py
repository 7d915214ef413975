"""The one place that reads ``settings.POWERCRUD``.

Values are read on every access, so ``override_settings`` works in tests. Each
setting has a typed default (``SETTINGS``), which a system check can validate.
"""

from __future__ import annotations

from async_queue.conf import Setting, SettingsAccessor

SETTINGS: dict[str, Setting] = {
    "MAX_SELECTION": Setting(
        10_000,
        (int,),
        "Most rows one user may select in one list; selecting past it is refused, not truncated.",
    ),
}


powercrud_settings = SettingsAccessor("POWERCRUD", SETTINGS)
