from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url

from async_queue.permissions import sees_all_jobs, visible_jobs

COUNT_CAP = 10_000  # counts above it show as "10000+" (a count never reads the whole table)


def home(request: HttpRequest) -> HttpResponse:
    """Job counts by status and the latest jobs the visitor may see; the page refreshes itself.

    What shows is what the job dashboard would show: staff see every job, other
    users their own (job names and errors included), anonymous visitors none.
    """
    jobs = visible_jobs(request.user)
    by_status = jobs.count_by_status(COUNT_CAP)
    counts = [
        (status, min(count, COUNT_CAP), count > COUNT_CAP) for status, count in by_status.items()
    ]
    return render(
        request,
        "library/home.html",
        {
            "counts": counts,
            "latest": jobs.order_by("-id")[:20],
            "signed_in": request.user.is_authenticated,
            "sees_all": sees_all_jobs(request.user),
            "login_url": f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': request.path})}",
        },
    )
