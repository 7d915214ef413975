"""The dashboard: a job list with live progress, a job page, and retry/cancel/delete.

Every page works without JavaScript (links, GET forms, POST forms that redirect
back with a message). With htmx (``request.htmx``) the same views answer with
the page's named partial instead: the list's results, one row, the job page's
live panel. Rows and panels of unfinished jobs poll their fragment; a fragment
answers HTTP 286 once its job has ended, which stops the polling.

Forms are ``forms``', what templates show is ``presenters``'. The list costs a
fixed number of queries whatever the page shows: one aggregate for the counts,
one for the page (keyset pagination on the id, newest first, so no ``COUNT`` of
the table and no deep ``OFFSET``), and one ``progress.snapshot()``. Filters are
validated by a form; only its cleaned values reach the queryset. Which jobs a
user sees and which actions they may take is ``permissions``' call.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django_htmx.http import HTMX_STOP_POLLING, HttpResponseClientRedirect

from . import display, metrics, permissions
from .conf import queue_settings
from .exceptions import InvalidJobState
from .forms import JobFilterForm
from .htmx import htmx_details, hx_trigger, wants_fragment
from .models import Job, JobError, JobQuerySet, Status
from .presenters import (
    JobRow,
    ProgressBar,
    call_summary,
    describe_locks,
    describe_policy,
    timeline,
    with_argument_text,
)
from .progress import CANCELLED, Progress, asnapshot, cancel, snapshot

# -- views ------------------------------------------------------------------------------


class DashboardMixin(LoginRequiredMixin):
    """Signed-in users only; the jobs are those ``permissions.visible_jobs`` allows."""

    poll_running = "every 1s"
    poll_queued = "every 3s"

    request: HttpRequest

    # The stubs say HttpResponseRedirect; Django returns whatever this returns.
    def handle_no_permission(self) -> HttpResponse:  # type: ignore[override]
        if wants_fragment(self.request) and not self.request.user.is_authenticated:
            # A fragment would swap the login page into a table row: send the whole page.
            current = (
                htmx_details(self.request).current_url_abs_path or self.request.get_full_path()
            )
            login = redirect_to_login(current, self.get_login_url())
            return HttpResponseClientRedirect(login.url)
        return super().handle_no_permission()

    def get_queryset(self) -> JobQuerySet:
        return permissions.visible_jobs(self.request.user).select_related("user")

    def get_job(self, pk: int) -> Job:
        try:
            return self.get_queryset().get(pk=pk)
        except Job.DoesNotExist:
            raise Http404("No such job.") from None

    def make_rows(
        self,
        jobs: list[Job],
        perms: frozenset[str] | None = None,
        progress: dict[int, Progress] | None = None,
    ) -> list[JobRow]:
        """The rows showing ``jobs``; ``perms`` and ``progress`` are loaded unless given."""
        progress = snapshot(jobs) if progress is None else progress
        now = timezone.now()
        user = self.request.user
        perms = permissions.granted(user) if perms is None else perms
        rows = []
        for job in jobs:
            row = JobRow(job, call_summary(job), permissions.allowed_actions(user, job, perms))
            if job.is_running:
                row.bar = ProgressBar.build(
                    job, progress.get(job.pk, Progress(None, None, "", None)), now
                )
                row.poll = self.poll_running
            elif not job.is_finished:
                row.poll = self.poll_queued
            rows.append(row)
        return rows

    def base_context(self) -> dict[str, Any]:
        return {
            "show_user": permissions.sees_all_jobs(self.request.user),
            "list_url": reverse("async_queue:job-list"),
        }

    def back_url(self, page: str) -> str:
        """Where an action form returns without JavaScript: the page showing the job."""
        if wants_fragment(self.request):
            return htmx_details(self.request).current_url_abs_path or page
        return page


class JobListView(DashboardMixin, View):
    """Counts by status, filters, and a page of jobs, newest first."""

    template_name = "async_queue/job_list.html"
    partial_template_name = "async_queue/partials/job_results.html"
    paginate_by = 25
    count_cap = 10_000

    def get(self, request: HttpRequest) -> HttpResponse:
        show_user = permissions.sees_all_jobs(request.user)
        form = JobFilterForm(request.GET or None, show_user=show_user)
        values = form.values()
        filters = {name: values[name] for name in JobFilterForm.FILTERS if name in values}
        by_status = self.status_counts(form)
        # The capped counts say whether few jobs match (then the indexes of the
        # filtered columns find them) or many (then the newest fill a page soonest).
        matching = by_status[values["status"]] if "status" in values else sum(by_status.values())
        few = matching <= self.count_cap if filters else None
        jobs = with_argument_text(form.apply(self.get_queryset(), few=few))
        page, newer, older = self.paginate(jobs, values.get("before"), values.get("after"))
        context = {
            **self.base_context(),
            "form": form,
            "filters": filters,
            "counts": self.counts(by_status, filters),
            "rows": self.make_rows(page),
            "newest_url": self.url(filters) if values.keys() & {"before", "after"} else "",
            "newer_url": self.url(filters, after=newer) if newer else "",
            "older_url": self.url(filters, before=older) if older else "",
            "back": request.get_full_path(),
            "refresh_url": request.get_full_path(),
        }
        template = self.partial_template_name if wants_fragment(request) else self.template_name
        response = render(request, template, context)
        patch_vary_headers(response, ["HX-Request"])
        return response

    def url(self, filters: dict[str, Any], **changes: Any) -> str:
        params = {name: value for name, value in {**filters, **changes}.items() if value}
        url = reverse("async_queue:job-list")
        return f"{url}?{urlencode(params)}" if params else url

    def status_counts(self, form: JobFilterForm) -> dict[str, int]:
        """Jobs per status under the other filters: one statement, each count capped.

        A table of millions of finished jobs would make exact counts a scan on every
        page; counts above ``count_cap`` show as "10000+" instead.
        """
        jobs = form.apply(self.get_queryset().select_related(None), with_status=False)
        return jobs.count_by_status(self.count_cap)

    def counts(self, by_status: dict[str, int], filters: dict[str, Any]) -> list[dict[str, Any]]:
        """The status links above the list, with their counts."""
        others = {name: value for name, value in filters.items() if name != "status"}
        total = sum(by_status.values())
        counts = [
            {
                "status": "",
                "label": "All",
                "count": min(total, self.count_cap),
                "more": total > self.count_cap,
                "url": self.url(others),
                "active": "status" not in filters,
            }
        ]
        for status in Status:
            count = by_status[status.value]
            counts.append(
                {
                    "status": status.value,
                    "label": status.label,
                    "count": min(count, self.count_cap),
                    "more": count > self.count_cap,
                    "url": self.url(others, status=status.value),
                    "active": filters.get("status") == status.value,
                }
            )
        return counts

    def paginate(
        self, jobs: JobQuerySet, before: int | None, after: int | None
    ) -> tuple[list[Job], int | None, int | None]:
        """A page of ``jobs`` newest first, and the cursors of the newer and older pages."""
        size = self.paginate_by
        if after is not None and before is None:
            page = self.rows(jobs.filter(pk__gt=after), "pk", size + 1)
            newer = page[size - 1].pk if len(page) > size else None
            page = page[:size][::-1]
            return page, newer, page[-1].pk if page else None
        if before is not None:
            jobs = jobs.filter(pk__lt=before)
        page = self.rows(jobs, "-pk", size + 1)
        older = page[size - 1].pk if len(page) > size else None
        page = page[:size]
        newer = page[0].pk if before is not None and page else None
        return page, newer, older

    @staticmethod
    def rows(jobs: JobQuerySet, ordering: str, count: int) -> list[Job]:
        """The first ``count`` of ``jobs`` in ``ordering``, in one statement.

        The ids are chosen first, from an index alone where one covers the filters,
        and only those rows are read whole: sorting a few thousand matches by id
        then moves ids, not every column of every match.
        """
        ids = jobs.select_related(None).order_by(ordering).values("pk")[:count]
        return list(jobs.filter(pk__in=ids).order_by(ordering))


class JobDetailView(DashboardMixin, View):
    """Everything about one job: call, result, locks, timeline, errors, live progress."""

    template_name = "async_queue/job_detail.html"
    locks_shown = 100

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        job = self.get_job(pk)
        keys = list(job.locks.order_by("key").values_list("key", flat=True)[: self.locks_shown + 1])
        context = {
            **self.base_context(),
            **self.detail_context(job, list(job.errors.all())),
            "row": self.make_rows([job])[0],
            "args_json": display.show_json(job.args),
            "kwargs_json": display.show_json(job.kwargs),
            "meta_json": display.show_json(job.meta) if job.meta else "",
            "locks": describe_locks(keys[: self.locks_shown]),
            "policy": describe_policy(job),
            "more_locks": len(keys) > self.locks_shown,
            "back": request.get_full_path(),
        }
        return render(request, self.template_name, context)

    @staticmethod
    def detail_context(job: Job, errors: list[JobError]) -> dict[str, Any]:
        """What changes when a job ends: its errors, timeline and result."""
        return {
            "job": job,
            "errors": errors,
            "timeline": timeline(job, errors),
            "result_json": "" if job.result is None else display.show_json(job.result),
        }


class JobFragmentView(DashboardMixin, View):
    """A polled fragment of one job; HTTP 286 once the job has ended, to stop the polling.

    These are the endpoints every open dashboard polls, so they are async views:
    under ASGI a poll holds no thread while it waits on the database. Everything
    they read is loaded with the async ORM and the auth backends' async API
    before rendering, which then touches the database no more.
    """

    template_name: str
    http_method_names = ["get", "head", "options"]
    shows_errors = False  # whether the context needs a finished job's errors

    job: Job

    # Async, as Django allows when every handler is: the stubs know only sync views.
    async def dispatch(  # type: ignore[override]
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        # LoginRequiredMixin.dispatch reads request.user, a blocking lookup: resolve it here.
        request.user = await request.auser()
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        handled = View.dispatch(self, request, *args, **kwargs)  # the async handler's coroutine
        return await cast("Awaitable[HttpResponse]", handled)

    async def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        try:
            job = self.job = await self.fragment_queryset().aget(pk=pk)
        except Job.DoesNotExist:
            raise Http404("No such job.") from None
        perms = await permissions.agranted(request.user)
        errors = [e async for e in job.errors.all()] if self.needs_errors(job) else []
        progress = await asnapshot([job])
        context = self.get_context(job, perms, errors, progress)
        response = render(request, self.template_name, context)
        if job.is_finished:
            response.status_code = HTMX_STOP_POLLING
        return response

    def fragment_queryset(self) -> JobQuerySet:
        """What a poll loads: no JSON column that the fragment does not show."""
        return with_argument_text(self.get_queryset())

    def needs_errors(self, job: Job) -> bool:
        return self.shows_errors and job.is_finished

    def get_context(
        self,
        job: Job,
        perms: frozenset[str],
        errors: list[JobError],
        progress: dict[int, Progress] | None = None,
    ) -> dict[str, Any]:
        """The fragment's context from what ``get`` loaded (no query of its own)."""
        context = {
            **self.base_context(),
            "row": self.make_rows([job], perms, progress)[0],
            "back": self.back_url(self.page_url(job)),
        }
        if job.is_finished:
            context |= self.ended_context(job, errors)
        return context

    def ended_context(self, job: Job, errors: list[JobError]) -> dict[str, Any]:
        """What the fragment adds once its job has ended."""
        return {}

    def page_url(self, job: Job) -> str:
        """The page this fragment belongs to (where a no-JavaScript form returns)."""
        return reverse("async_queue:job-list")


class JobRowView(JobFragmentView):
    """One row of the list; when the job changed status, the list's counts are refreshed."""

    template_name = "async_queue/partials/job_row.html"
    changed_event = "aq-job-changed"

    async def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        response = await super().get(request, pk)
        shown = request.GET.get("shown")
        if shown and shown != self.job.status:
            # Counting costs a scan, so the counts follow transitions, not every poll.
            hx_trigger(response, self.changed_event)
        return response


class JobLiveView(JobFragmentView):
    """The job page's live panel; once the job ended, its timeline, errors and result too."""

    template_name = "async_queue/partials/job_live.html"
    shows_errors = True

    def page_url(self, job: Job) -> str:
        return reverse("async_queue:job-detail", args=[job.pk])

    def fragment_queryset(self) -> JobQuerySet:
        return with_argument_text(self.get_queryset(), keep=("result",))

    def ended_context(self, job: Job, errors: list[JobError]) -> dict[str, Any]:
        return {**JobDetailView.detail_context(job, errors), "oob": True}


class JobActionView(DashboardMixin, View, metaclass=abc.ABCMeta):
    """POST only: do one thing to a job, then redirect back (or answer with its fragment)."""

    http_method_names = ["post"]
    action: str  # the verb, as in "You may not retry jobs."
    past: str  # as in "Job 5 cannot be retried"
    permission: str

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        job = self.get_job(pk)
        if not request.user.has_perm(self.permission):
            raise PermissionDenied(f"You may not {self.action} jobs.")
        try:
            level, text = messages.SUCCESS, self.perform(job)
        except InvalidJobState:
            job.refresh_from_db(fields=["status"])
            level = messages.ERROR
            text = f"Job {job.pk} cannot be {self.past}: it is {job.get_status_display().lower()}."
        return self.respond(job, level, text)

    @abc.abstractmethod
    def perform(self, job: Job) -> str:
        """Do the action; return the message to show. Raises ``InvalidJobState``."""

    def next_url(self, job: Job) -> str:
        candidate = self.request.POST.get("next", "")
        if url_has_allowed_host_and_scheme(
            candidate,
            allowed_hosts={self.request.get_host()},
            require_https=self.request.is_secure(),
        ):
            return candidate
        return reverse("async_queue:job-detail", args=[job.pk])

    def respond(self, job: Job, level: int, text: str) -> HttpResponse:
        if not wants_fragment(self.request):
            messages.add_message(self.request, level, text)
            return HttpResponseRedirect(self.next_url(job))
        job = self.get_job(job.pk)
        view, template = self.fragment_for(job)
        errors = list(job.errors.all()) if view.needs_errors(job) else []
        context = view.get_context(job, permissions.granted(self.request.user), errors)
        context["row"].notice = (messages.DEFAULT_TAGS[level], text)
        response = render(self.request, template, context)
        if level == messages.SUCCESS:
            hx_trigger(response, JobRowView.changed_event)
        return response

    def fragment_for(self, job: Job) -> tuple[JobFragmentView, str]:
        """The fragment the htmx request targets: the job page's live panel or a list row."""
        live = htmx_details(self.request).target == f"job-{job.pk}-live"
        view: JobFragmentView = JobLiveView() if live else JobRowView()
        view.setup(self.request, pk=job.pk)
        return view, view.template_name


class RetryJobView(JobActionView):
    action, past, permission = "retry", "retried", permissions.RETRY_PERMISSION

    def perform(self, job: Job) -> str:
        job.retry()
        return f"Job {job.pk} was queued again."


class CancelJobView(JobActionView):
    action, past, permission = "cancel", Status.CANCELLED.value, permissions.CANCEL_PERMISSION

    def perform(self, job: Job) -> str:
        if cancel(job) == CANCELLED:
            return f"Job {job.pk} was cancelled."
        return f"Cancellation of job {job.pk} was requested: it stops at its next progress report."


class DeleteJobView(JobActionView):
    action, past, permission = "delete", "deleted", permissions.DELETE_PERMISSION

    def perform(self, job: Job) -> str:
        deleted, _ = Job.objects.finished().filter(pk=job.pk).delete()
        if not deleted:
            raise InvalidJobState(f"Job {job.pk} is not finished.")
        return f"Job {job.pk} was deleted."

    def next_url(self, job: Job) -> str:
        url = super().next_url(job)
        detail = reverse("async_queue:job-detail", args=[job.pk])
        if urlsplit(url).path.startswith(detail):
            return reverse("async_queue:job-list")
        return url

    def respond(self, job: Job, level: int, text: str) -> HttpResponse:
        if level != messages.SUCCESS or not wants_fragment(self.request):
            return super().respond(job, level, text)
        if htmx_details(self.request).target == f"job-{job.pk}-live":
            messages.success(self.request, text)
            return HttpResponseClientRedirect(reverse("async_queue:job-list"))
        return hx_trigger(HttpResponse(""), JobRowView.changed_event)  # no row


class MetricsView(View):
    """Prometheus/OpenMetrics text: for staff, or with ``Authorization: Bearer <METRICS_TOKEN>``."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> HttpResponse:
        if not self.allowed(request):
            return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
        return HttpResponse(
            metrics.render(Job.objects.db),
            content_type="application/openmetrics-text; version=1.0.0; charset=utf-8",
        )

    def allowed(self, request: HttpRequest) -> bool:
        token = queue_settings.METRICS_TOKEN
        header = request.headers.get("Authorization", "")
        if token and header.startswith("Bearer "):
            return constant_time_compare(header.removeprefix("Bearer "), token)
        user = request.user
        return bool(user.is_active and user.is_staff)
