"""Template tags of the bulk templates: ``{% load powercrud_bulk %}``."""

from __future__ import annotations

from django import template
from django.db import models

from powercrud.presenters import BulkContext, BulkRow

register = template.Library()


@register.simple_tag
def bulk_row(obj: models.Model, bulk: BulkContext) -> BulkRow:
    """``{% bulk_row object bulk as row %}``: the row's pk, checkbox id, state and htmx values."""
    return bulk.row(obj)
