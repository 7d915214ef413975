"""The dashboard's pause and resume: POST forms above the job list.

What is paused is shown to every signed-in user of the dashboard (it explains
why their jobs wait); who paused it only to those who see all jobs. Pausing
needs ``async_queue.add_pause`` and resuming ``async_queue.delete_pause`` (the
model permissions the admin uses for the same acts; superusers have both).
Without JavaScript the forms post and redirect back with a message.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View

from . import permissions
from .models import Pause, PauseKind
from .pausing import (
    REASON_MAX_LENGTH,
    pause_job,
    pause_queue,
    paused,
    resume_job,
    resume_queue,
)

PAUSE_PERMISSION = "async_queue.add_pause"
RESUME_PERMISSION = "async_queue.delete_pause"


class PauseForm(forms.Form):
    kind = forms.ChoiceField(choices=PauseKind.choices, initial=PauseKind.QUEUE, label="Pause")
    value = forms.CharField(
        max_length=255,
        label="Name",
        widget=forms.TextInput(attrs={"placeholder": "queue, or myapp.tasks.job"}),
    )
    reason = forms.CharField(max_length=REASON_MAX_LENGTH, required=False, label="Reason")


def panel(request: HttpRequest) -> dict[str, Any]:
    """What the job list's pause panel shows ``request.user``, and which forms it offers."""
    user = request.user
    return {
        "pauses": paused(),
        "can_pause": user.has_perm(PAUSE_PERMISSION),
        "can_resume": user.has_perm(RESUME_PERMISSION),
        "show_user": permissions.sees_all_jobs(user),
        "form": PauseForm(auto_id="id_pause_%s"),  # unique beside the filters' ids
        "back": request.get_full_path(),
    }


class PauseActionView(LoginRequiredMixin, View):
    """POST only; redirects back to the page the form was on, with a message."""

    http_method_names = ["post"]
    request: HttpRequest

    def next_url(self) -> str:
        candidate = self.request.POST.get("next", "")
        if url_has_allowed_host_and_scheme(
            candidate,
            allowed_hosts={self.request.get_host()},
            require_https=self.request.is_secure(),
        ):
            return candidate
        return reverse("async_queue:job-list")

    def done(self, level: int, text: str) -> HttpResponse:
        messages.add_message(self.request, level, text)
        return HttpResponseRedirect(self.next_url())


class PauseView(PauseActionView):
    def post(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(PAUSE_PERMISSION):
            raise PermissionDenied("You may not pause queues or jobs.")
        form = PauseForm(request.POST)
        if not form.is_valid():
            problems = "; ".join(
                f"{form[name].label}: {' '.join(str(error) for error in errors)}"
                for name, errors in form.errors.items()
            )
            return self.done(messages.ERROR, f"Nothing was paused. {problems}")
        kind, value, reason = (form.cleaned_data[name] for name in ("kind", "value", "reason"))
        label = f"{'Queue' if kind == PauseKind.QUEUE else 'Job'} {value!r}"
        try:
            if kind == PauseKind.QUEUE:
                done = pause_queue(value, reason=reason, user=request.user)
            else:
                done = pause_job(value, reason=reason, user=request.user)
        except ValueError as exc:
            return self.done(messages.ERROR, f"Nothing was paused. {exc}")
        if not done:
            return self.done(messages.WARNING, f"{label} was paused already.")
        return self.done(
            messages.SUCCESS,
            f"{label} paused: workers start none of its jobs until it is resumed; "
            "running jobs finish.",
        )


class ResumeView(PauseActionView):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm(RESUME_PERMISSION):
            raise PermissionDenied("You may not resume queues or jobs.")
        pause = Pause.objects.filter(pk=pk).first()
        if pause is None:  # resumed meanwhile, by someone else or in another tab
            return self.done(messages.WARNING, "That pause was resumed already.")
        if pause.kind == PauseKind.QUEUE:
            resume_queue(pause.value)
            label = f"Queue {pause.value!r}"
        else:
            resume_job(pause.value)
            label = f"Job {pause.value!r}"
        return self.done(messages.SUCCESS, f"{label} resumed: workers start its jobs again.")
