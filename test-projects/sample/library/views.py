from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.views.decorators.http import require_POST

from async_queue import snapshot
from async_queue.permissions import sees_all_jobs, visible_jobs
from powercrud import PowerRole
from powercrud.selection import Selection

from . import demo
from .crud import BigBookView
from .models import BigBook

COUNT_CAP = 10_000  # counts above it show as "10000+" (a count never reads the whole table)

bulk_edit_big_books = BigBookView.as_view(role=PowerRole.BULK_EDIT)


def home(request: HttpRequest) -> HttpResponse:
    """Job counts by status, the latest jobs the visitor may see, buttons that start jobs.

    What shows is what the job dashboard would show: staff see every job, other
    users their own (job names and errors included), anonymous visitors none. The
    page refreshes itself; ``?started=<id>`` (where the buttons lead) keeps the job
    just started on top, with links to where its progress is shown live.
    """
    jobs = visible_jobs(request.user)
    by_status = jobs.count_by_status(COUNT_CAP)
    counts = [
        (status, min(count, COUNT_CAP), count > COUNT_CAP) for status, count in by_status.items()
    ]
    latest = list(jobs.order_by("-id")[:20])
    started_id = request.GET.get("started", "")
    started = jobs.filter(pk=started_id).first() if started_id.isdigit() else None
    progress = snapshot([*latest, *([started] if started else [])])
    selection_limit = Selection(request.session, "", BigBook).limit
    return render(
        request,
        "library/home.html",
        {
            "counts": counts,
            "latest": [(job, progress[job.pk]) for job in latest],
            "started": started,
            "started_progress": progress[started.pk] if started else None,
            "signed_in": request.user.is_authenticated,
            "sees_all": sees_all_jobs(request.user),
            "login_url": f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': request.path})}",
            "slow_seconds": settings.DEMO_SLOW_SECONDS,
            "bulk_seconds": settings.DEMO_BULK_SECONDS,
            "big_books": min(BigBook.objects.count(), selection_limit),
            "bulk_statuses": BigBook.Status.choices,
        },
    )


def watch(job_id: int) -> HttpResponseRedirect:
    """Back to the home page, with the job just started on top."""
    return HttpResponseRedirect(f"{reverse('home')}?{urlencode({'started': job_id})}")


@require_POST
@login_required
def start_slow_job(request: HttpRequest) -> HttpResponse:
    return watch(demo.start_slow_job(request.user).pk)


@require_POST
@login_required
def start_flaky_job(request: HttpRequest) -> HttpResponse:
    return watch(demo.start_flaky_job(request.user).pk)


@require_POST
@login_required
def start_bulk_edit(request: HttpRequest) -> HttpResponse:
    """Select the big books the list shows first, then apply the posted bulk edit to them.

    The form carries what the list's bulk edit modal would post (``stage=apply``, the
    fields to change); BigBookView's own bulk edit endpoint takes it from there: it
    checks permissions and busy rows, schedules the job (enough rows for one) and
    answers a plain POST with powercrud's progress page for that job.
    """
    selection = Selection(request.session, Selection.key_for(BigBookView, BigBook), BigBook)
    pks = BigBook.objects.values_list("pk", flat=True)[: selection.limit]
    selection.replace([str(pk) for pk in pks])
    return bulk_edit_big_books(request)
