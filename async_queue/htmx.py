"""The one place both apps' views ask what an htmx request wants and answer with events.

``request.htmx`` comes from django-htmx's ``HtmxMiddleware``; these helpers also
work when it is not installed (the dashboard does not require it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django_htmx.middleware import HtmxDetails


def htmx_details(request: HttpRequest) -> HtmxDetails:
    """``request.htmx``, also when ``HtmxMiddleware`` is not installed."""
    details = getattr(request, "htmx", None)
    return details if isinstance(details, HtmxDetails) else HtmxDetails(request)


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx request for a piece of a page (not a boosted link or a history restore)."""
    details = htmx_details(request)
    return bool(details) and not details.boosted and not details.history_restore_request


def hx_trigger(response: HttpResponse, events: str | Mapping[str, Any]) -> HttpResponse:
    """Set ``HX-Trigger``: one event name, or events with their details (as JSON)."""
    value = events if isinstance(events, str) else json.dumps(events, cls=DjangoJSONEncoder)
    response["HX-Trigger"] = value
    return response
