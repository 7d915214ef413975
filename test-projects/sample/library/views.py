from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from async_queue import Job


def home(request: HttpRequest) -> HttpResponse:
    """Job counts by status and the latest jobs; the page refreshes itself."""
    jobs = Job.objects.all()
    counts = [
        ("queued", jobs.queued().count()),
        ("running", jobs.running().count()),
        ("succeeded", jobs.succeeded().count()),
        ("failed", jobs.failed().count()),
        ("cancelled", jobs.cancelled().count()),
    ]
    return render(
        request, "library/home.html", {"counts": counts, "latest": jobs.order_by("-id")[:20]}
    )
