"""Template filters of the dashboard: ``{% load async_queue %}``."""

from __future__ import annotations

from datetime import timedelta

from django import template

from .. import display

register = template.Library()


@register.filter
def duration(value: timedelta | float | None) -> str:
    """``4.2s``, ``37s``, ``3m 05s``, ``2h 07m``; empty for None."""
    if value is None or value == "":
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@register.filter
def shown(value: str | None) -> str:
    """Stored text (an error, a traceback) as pages show it: redacted and size-capped."""
    return display.show_text(value or "")
