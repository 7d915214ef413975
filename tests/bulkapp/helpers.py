"""Client helpers of the bulk tests: select rows, apply a bulk edit, read the selection."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db import models
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from powercrud.selection import Selection

from .views import BookView

HX = {"HTTP_HX_REQUEST": "true"}


def choose(client: Client, objects: Iterable[models.Model], url_base: str = "book") -> None:
    """Select ``objects`` (toggling them as one page, so none may be selected before)."""
    response = client.post(
        reverse(f"{url_base}-select"), {"action": "page", "page": [o.pk for o in objects]}, **HX
    )
    assert response.status_code == 200, response.content


def selected(client: Client, view: type = BookView) -> list[str]:
    return client.session.get(Selection.key_for(view, view.model), [])


def edit(
    client: Client, url_base: str = "book", headers: dict[str, str] | None = None, **changes: Any
) -> HttpResponse:
    """Apply a bulk edit: ``status="published"`` ticks and sets status; M2M as (mode, pks)."""
    data: dict[str, Any] = {"stage": "apply"}
    for name, value in changes.items():
        data[f"{name}__change"] = "on"
        if isinstance(value, tuple):
            data[f"{name}__mode"], data[name] = value
        else:
            data[name] = "" if value is None else value
    return client.post(
        reverse(f"{url_base}-bulk-edit"), data, **(HX if headers is None else headers)
    )


def delete(client: Client, url_base: str = "book") -> HttpResponse:
    return client.post(reverse(f"{url_base}-bulk-delete"), {"stage": "apply"}, **HX)


def events(response: HttpResponse) -> dict[str, Any]:
    return json.loads(response["HX-Trigger"])


def attribute(html: str, name: str) -> str:
    """The value of the first ``name="..."`` attribute in ``html``."""
    marker = f'{name}="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
