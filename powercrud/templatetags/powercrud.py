"""Template tags of powercrud: ``{% load powercrud %}``."""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Model

register = template.Library()


@register.inclusion_tag("powercrud/partials/assets.html")
def powercrud_assets(include_htmx: bool = True) -> dict[str, Any]:
    """The stylesheet and scripts of the powercrud pages (htmx unless told otherwise)."""
    return {"include_htmx": include_htmx}


@register.filter
def cell(value: Any) -> Any:
    """A value as a table cell shows it: a dash for nothing, Yes/No for booleans."""
    if value is None or value == "":
        return "—"
    if value is True:
        return "Yes"
    if value is False:
        return "No"
    if isinstance(value, Model):
        return str(value)
    return value


@register.filter
def number(value: Any) -> Any:
    """A count with thousands separators ("10,000"), as powercrud's messages write counts.

    Not ``intcomma``: that needs ``django.contrib.humanize`` installed and follows the
    locale, while the messages built in Python use ``{:,}``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return value
