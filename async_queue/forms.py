"""The dashboard's filter form: only its cleaned values reach the queryset."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from .models import Job, JobQuerySet, Status
from .sql import hinted

MAX_ID = 2**63 - 1


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
