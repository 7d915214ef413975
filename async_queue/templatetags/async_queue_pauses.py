"""The job list's pause panel: ``{% load async_queue_pauses %}{% pause_panel as panel %}``.

A tag rather than context of the list view, so that the panel is one ``{% include %}``
of ``async_queue/partials/pauses.html`` and costs one query, on the full page only
(the list's htmx fragments do not include it).
"""

from __future__ import annotations

from typing import Any

from django import template

from ..pause_views import panel

register = template.Library()


@register.simple_tag(takes_context=True)
def pause_panel(context: template.Context) -> dict[str, Any]:
    """What is paused, and the pause and resume forms the signed-in user may use."""
    return panel(context["request"])
