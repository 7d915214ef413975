"""The dashboard: a job list with live progress, a job page, and retry/cancel/delete.

Every page works without JavaScript (links, GET forms, POST forms that redirect
back with a message). With htmx (``request.htmx``) the same views answer with
the page's named partial instead: the list's results, one row, the job page's
live panel. Rows and panels of unfinished jobs poll their fragment; a fragment
answers HTTP 286 once its job has ended, which stops the polling.

The list costs a fixed number of queries whatever the page shows: one aggregate
for the counts, one for the page (keyset pagination on the id, newest first, so
no ``COUNT`` of the table and no deep ``OFFSET``), and one ``progress.snapshot()``.
Filters are validated by a form; only its cleaned values reach the queryset.
Which jobs a user sees and which actions they may take is ``permissions``' call.
"""

from __future__ import annotations

import abc
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django import forms
from django.apps import apps
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import ExpressionWrapper, F, Model, Q, TextField
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
from .htmx import htmx_details, hx_trigger, wants_fragment
from .models import Job, JobError, JobQuerySet, Status
from .progress import Progress, asnapshot, cancel, snapshot
from .sql import hinted

MAX_ID = 2**63 - 1
JSON_FIELDS = ("args", "kwargs", "meta", "result")
ARGUMENT_FIELDS = ("args", "kwargs")


# -- what the templates show ------------------------------------------------------------


@dataclass(frozen=True)
class ProgressBar:
    """A running job's progress, with the time it has run and an estimate of what is left."""

    current: int | None
    total: int | None
    percent: float | None
    message: str
    elapsed: timedelta | None
    eta: timedelta | None
    cancel_requested: bool

    @classmethod
    def build(cls, job: Job, progress: Progress, now: datetime) -> ProgressBar:
        elapsed = max(now - job.started_at, timedelta(0)) if job.started_at else None
        current, total = progress.current, progress.total
        eta = None
        if elapsed is not None and current and total is not None and total >= current:
            eta = elapsed * (total - current) / current
        cancel_requested = bool(getattr(progress, "cancel_requested", False))
        return cls(
            current,
            total,
            progress.percent,
            display.show_line(progress.message, 300),
            elapsed,
            eta,
            cancel_requested or job.cancel_requested_at is not None,
        )


@dataclass
class JobRow:
    """One job as the list and the live panel show it."""

    job: Job
    call: str
    actions: frozenset[str]
    bar: ProgressBar | None = None
    poll: str = ""  # the hx-trigger of an unfinished job's fragment
    notice: tuple[str, str] | None = None  # (level, text) after an htmx action

    @property
    def error(self) -> str:
        """The latest failure (redacted, one line's worth), unless the job has succeeded since."""
        return "" if self.job.is_succeeded else display.show_line(self.job.last_error, 160)


@dataclass
class LockEntry:
    key: str
    label: str = ""
    url: str = ""


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    title: str
    detail: str = ""
    worker: str = ""


ARGUMENT_TEXT = 65_536  # longer args or kwargs are not decoded by lists and polled fragments


def with_argument_text(jobs: JobQuerySet, keep: tuple[str, ...] = ()) -> JobQuerySet:
    """``jobs`` without their JSON columns (but ``keep``); args and kwargs as undecoded text.

    A list row shows a one-line call summary; decoding a forged 16 MB argument
    for it would cost seconds on every list page and every poll. The text is the
    column itself (no SQL function, which SQLite would compute for every row it
    sorts), decoded only when short.
    """
    annotations = {
        f"{name}_text": ExpressionWrapper(F(name), output_field=TextField())
        for name in ARGUMENT_FIELDS
    }
    deferred = [name for name in JSON_FIELDS if name not in keep]
    return jobs.defer(*deferred).annotate(**annotations)


def argument(job: Job, name: str) -> Any:
    """``job.args`` or ``job.kwargs``; from its undecoded text if that was loaded instead."""
    if not hasattr(job, f"{name}_text"):
        return getattr(job, name)
    text = getattr(job, f"{name}_text")
    if text is None:
        return None
    if len(text) > ARGUMENT_TEXT:
        return display.Omitted(f"[{len(text):,} characters of {name}: see the job's page]")
    return Job._meta.get_field(name).from_db_value(text, None, None)


def call_summary(job: Job, limit: int = 120) -> str:
    """``fn(1, "a", key=value)`` with secrets redacted, cut to ``limit`` characters."""
    return display.call_summary(job.name, argument(job, "args"), argument(job, "kwargs"), limit)


def safe_url(url: str) -> str:
    """``url`` if a link to it cannot run script (no ``javascript:``), else ``""``."""
    return url if url.startswith(("/", "http://", "https://")) else ""


def describe_locks(keys: list[str]) -> list[LockEntry]:
    """Entries for lock keys, linking objects that exist to their page (one query per model)."""
    entries = [LockEntry(key) for key in keys]
    wanted: dict[type[Model], dict[Any, list[LockEntry]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        label, sep, raw_pk = entry.key.partition(":")
        if not sep or label.count(".") != 1:
            continue
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        if raw_pk == "*":
            entry.label = f"all {model._meta.verbose_name_plural}"
            continue
        try:
            pk = model._meta.pk.to_python(raw_pk)
        except ValidationError:
            continue
        wanted[model][pk].append(entry)
    for model, by_pk in wanted.items():
        for pk, instance in model._default_manager.in_bulk(list(by_pk)).items():
            url = instance.get_absolute_url() if hasattr(instance, "get_absolute_url") else ""
            for entry in by_pk.get(pk, ()):
                entry.label = str(instance)
                entry.url = safe_url(str(url))
    return entries


def timeline(job: Job, errors: list) -> list[Event]:
    """The job's events, oldest first, derived from its row and its error rows."""
    events = [Event(job.created_at, "scheduled", "Scheduled", f"queue {job.queue}")]
    if not job.is_finished and job.run_after and job.run_after > job.created_at:
        title = "Next attempt due" if job.attempts else "Due"
        events.append(Event(job.run_after, "due", title))
    for error in errors:
        detail = display.show_line(f"{error.exception[:300]}: {error.message[:400]}", 300)
        events.append(
            Event(
                error.created_at, "failed", f"Attempt {error.attempt} failed", detail, error.worker
            )
        )
    if job.started_at:
        events.append(
            Event(job.started_at, "started", f"Attempt {job.attempts} started", worker=job.worker)
        )
    if job.cancel_requested_at:
        events.append(Event(job.cancel_requested_at, "cancel-requested", "Cancellation requested"))
    events.sort(key=lambda event: event.at)
    if job.finished_at and job.is_finished:
        # Last whatever the clocks say: the error row of the final attempt is written
        # a moment after the job's finished_at.
        events.append(Event(job.finished_at, job.status, job.get_status_display()))
    return events


# -- filters ----------------------------------------------------------------------------


class JobFilterForm(forms.Form):
    """The list's GET parameters; values that do not validate are ignored (and shown)."""

    q = forms.CharField(
        required=False,
        max_length=255,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "name or #id"}),
    )
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *Status.choices])
    queue = forms.CharField(required=False, max_length=100)
    name = forms.CharField(required=False, max_length=255)
    user = forms.CharField(required=False, max_length=150)
    before = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput
    )
    after = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput
    )

    FILTERS = ("q", "status", "queue", "name", "user")
    names_searched = 1000  # most distinct job names a search compares
    search_note = ""  # set when a search could not compare every name
    _names: list[str] | None = None

    def __init__(self, *args: Any, show_user: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.show_user = show_user  # False: the jobs are already those of one user
        if not show_user:
            del self.fields["user"]

    def values(self) -> dict[str, Any]:
        """The valid, non-empty values; an invalid or absent field is left out."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name in self.fields and value not in (None, "")
        }

    def apply(
        self, jobs: JobQuerySet, with_status: bool = True, few: bool | None = None
    ) -> JobQuerySet:
        """``jobs`` filtered by the valid values (and by status unless ``with_status`` is off).

        ``few`` is what the caller knows of how many jobs match (from the capped
        counts): at most a few thousand (``True``), so they are best found through
        the indexes of the filtered columns, or more (``False``), so walking the
        table newest first fills a page soonest. ``None``: unknown.
        """
        values = self.values()
        if not self.show_user or "user" in values:
            # One user's jobs: the user index finds them newest first, whatever
            # else is asked, so no other column's index should look better.
            few = False
        if with_status and "status" in values:
            jobs = jobs.filter(hinted(jobs.db, few, status=values["status"]))
        if "queue" in values:
            jobs = jobs.filter(hinted(jobs.db, few, queue=values["queue"]))
        if "name" in values:
            jobs = jobs.filter(hinted(jobs.db, few, name=values["name"]))
        if "user" in values:
            # The user's id first, so that the job filter uses the user_id index.
            model = get_user_model()
            found = model._default_manager.filter(**{model.USERNAME_FIELD: values["user"]})
            user_id = found.values_list("pk", flat=True).first()
            if user_id is None:
                jobs = jobs.none()
            else:
                jobs = jobs.filter(hinted(jobs.db, True, user_id=user_id))
        if "q" in values:
            jobs = self.search(jobs, values["q"].strip(), few)
        return jobs

    def search(self, jobs: JobQuerySet, query: str, few: bool | None = None) -> JobQuerySet:
        """Jobs whose name contains ``query`` (any case), or job ``#id`` (or a bare id).

        A substring match in SQL (``icontains``) reads every row of the table, and
        one that matches nothing reads all of them before the page is empty. The
        distinct names are few, so they are matched here instead and the jobs are
        then found through the name index. With more than ``names_searched``
        distinct names, only the first ones (alphabetically) are searched, and
        ``search_note`` says so.
        """
        ident = query.removeprefix("#")
        is_id = ident.isascii() and ident.isdigit() and len(ident) <= 18
        if is_id and query.startswith("#"):
            return jobs.filter(pk=int(ident))  # "#123" is an id: no look at the names
        wanted = query.casefold()
        matched = [name for name in self.job_names(jobs.db) if wanted in name.casefold()]
        by_name = hinted(jobs.db, few, name__in=matched) if matched else None
        if is_id:
            by_id = Q(pk=int(ident))
            return jobs.filter(Q(by_name) | by_id if by_name else by_id)
        return jobs.filter(by_name) if by_name else jobs.none()

    def job_names(self, using: str) -> list[str]:
        """The names a search compares (read once per form)."""
        if self._names is None:
            names = Job.objects.using(using).names(self.names_searched + 1)
            if len(names) > self.names_searched:
                names = names[: self.names_searched]
                self.search_note = (
                    f"Searched the first {self.names_searched} job names (alphabetically); "
                    "use the exact Name filter for others."
                )
            self._names = names
        return self._names


# -- views ------------------------------------------------------------------------------


class DashboardMixin(LoginRequiredMixin):
    """Signed-in users only; the jobs are those ``permissions.visible_jobs`` allows."""

    poll_running = "every 1s"
    poll_queued = "every 3s"

    request: HttpRequest

    def handle_no_permission(self) -> HttpResponse:
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

    async def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # LoginRequiredMixin.dispatch reads request.user, a blocking lookup: resolve it here.
        request.user = await request.auser()
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        return await View.dispatch(self, request, *args, **kwargs)

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
    action, past, permission = "cancel", "cancelled", permissions.CANCEL_PERMISSION

    def perform(self, job: Job) -> str:
        if cancel(job) == "cancelled":
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
