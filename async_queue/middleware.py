"""Answer "busy, try again" (HTTP 503) when the database cannot take a write in time.

On SQLite a running job's transaction holds the database's only write lock for
the whole job. A web request that writes meanwhile (a login, a new record, a
cancelled job, a saved session) waits up to the busy ``timeout`` and then fails
with ``OperationalError: database is locked``: Django answers 500, and when it is
the session that cannot be saved, 400 ("the session was deleted"), losing what
the request changed in it. ``DatabaseBusyMiddleware`` turns both into a 503 with
a ``Retry-After`` header: a small page, or for htmx a fragment and an
``async-queue:busy`` event (``{"message": ..., "retryAfter": ...}``) that a page
can show. Nothing of the request was saved, and the session keeps what it had.

Place it directly after ``SessionMiddleware``: it saves a changed session itself
(SessionMiddleware then only sets the cookie), after every middleware below it
has changed the session.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin
from django.utils.http import url_has_allowed_host_and_scheme

from .conf import queue_settings
from .htmx import htmx_details, hx_trigger
from .sql import is_database_busy

BUSY_EVENT = "async-queue:busy"
BUSY_MESSAGE = (
    "The database is busy with a background job, so nothing was saved. "
    "Please try again in a moment."
)


def busy_response(request: HttpRequest) -> HttpResponse:
    """The 503 answer: a fragment and an event for htmx, a small page otherwise."""
    retry_after = int(queue_settings.BUSY_RETRY_AFTER)
    context = {"message": BUSY_MESSAGE, "retry_after": retry_after, "back": _back_url(request)}
    if htmx_details(request):
        html = render_to_string("async_queue/partials/busy.html", context)
        response = HttpResponse(html, status=503)
        hx_trigger(response, {BUSY_EVENT: {"message": BUSY_MESSAGE, "retryAfter": retry_after}})
    else:
        response = HttpResponse(render_to_string("async_queue/busy.html", context), status=503)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response


def _back_url(request: HttpRequest) -> str:
    referer = request.headers.get("Referer", "")
    allowed = url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return referer if allowed else ""


def _already_saved(must_create: bool = False) -> None:
    """Stands in for ``session.save`` once this middleware has saved the session."""


class DatabaseBusyMiddleware(MiddlewareMixin):
    """503 + ``Retry-After`` instead of a 500 or 400 when the database is locked by a job."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_busy(exception):
            return busy_response(request)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is None or response.status_code >= 500:
            return response  # SessionMiddleware saves nothing either
        if not (session.modified or settings.SESSION_SAVE_EVERY_REQUEST) or session.is_empty():
            return response
        # Saved here, so that a locked database is a 503 and not SessionMiddleware's
        # 400; on any other failure SessionMiddleware tries again and answers as usual.
        try:
            session.save()
        except (DatabaseError, UpdateError) as exc:
            if is_database_busy(exc):
                return busy_response(request)
            return response
        session.save = _already_saved  # SessionMiddleware, next, only sets the cookie
        return response
