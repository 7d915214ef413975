"""Helpers of the bulk tests: select rows, apply a bulk edit, read the selection; make rows
(``make_books`` here titles them ``book 0000``... with no author), run queued jobs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django.db import models
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from async_queue import Job, Status
from powercrud.selection import Selection

from .bulk_views import BookView
from .models import Author, Book, Tag

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


def make_books(count: int, **fields: Any) -> list[Book]:
    """``count`` books titled ``book 0000``... (bulk_create: no per-row query)."""
    defaults: dict[str, Any] = {"price": Decimal("10.00")}
    defaults.update(fields)
    books = Book.objects.bulk_create(Book(title=f"book {n:04d}", **defaults) for n in range(count))
    if books and books[0].pk is None:  # backends without RETURNING: read them back
        books = list(Book.objects.order_by("id")[:count])
    return books


def make_tags(*codes: str) -> list[Tag]:
    return [Tag.objects.create(slug=code, name=code.upper()) for code in codes]


def make_author(name: str = "Ann") -> Author:
    return Author.objects.create(name=name)


def last_job() -> Job:
    return Job.objects.order_by("-id").first()


def run_queued(predicate: Callable[[Job], bool] | None = None) -> list[Job]:
    """Run every queued job in this process, as a worker would (``job.execute()``)."""
    ran = []
    for job in Job.objects.filter(status=Status.QUEUED).order_by("id"):
        if predicate is None or predicate(job):
            job.execute()
            ran.append(job)
    return ran
