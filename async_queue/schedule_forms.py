"""The form that makes and edits database schedules, in the admin and in the dashboard.

Beyond the row's own ``clean()`` (cron, time zone), it refuses what a worker would
trip over at every tick: a function that is not a declared job (only declared code
runs, as with ``schedule()``), arguments that ``schedule()`` would not store, and a
name that a code schedule already uses.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from . import crontime
from .callables import declaration
from .exceptions import ScheduleError
from .models import Schedule
from .periodic import all_periodic
from .scheduling import INT32, encode_payload


def zone_choices() -> list[tuple[str, str]]:
    return [(key, key) for key in sorted(crontime.zone_names())]


class ScheduleForm(forms.ModelForm):
    timezone = forms.ChoiceField(
        choices=zone_choices,
        initial="UTC",
        help_text="The zone whose wall clock the cron expression reads.",
    )
    args = forms.JSONField(
        required=False,
        initial=list,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='A JSON list, e.g. [1, "two"].',
    )
    kwargs = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='A JSON object, e.g. {"report": "daily"}.',
    )
    priority = forms.IntegerField(
        required=False,
        min_value=INT32[0],
        max_value=INT32[1],
        help_text="Higher runs first; empty: the job's declared priority.",
    )

    class Meta:
        model = Schedule
        fields = [
            "name",
            "function",
            "cron",
            "timezone",
            "args",
            "kwargs",
            "queue",
            "priority",
            "enabled",
        ]
        widgets = {"cron": forms.TextInput(attrs={"placeholder": "30 2 * * *"})}

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        code = {entry.name: entry for entry in all_periodic()}
        if name in code and not self.instance.is_code:
            raise ValidationError(
                f"{name!r} is the name of a periodic job declared in code "
                f"({code[name].source}); choose another name."
            )
        return name

    def clean_function(self) -> str:
        try:
            name, _ = declaration(self.cleaned_data["function"])
        except ScheduleError as exc:
            raise ValidationError(str(exc)) from None
        return name

    def clean_args(self) -> Any:
        return [] if self.cleaned_data["args"] is None else self.cleaned_data["args"]

    def clean_kwargs(self) -> Any:
        return {} if self.cleaned_data["kwargs"] is None else self.cleaned_data["kwargs"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if "args" not in cleaned or "kwargs" not in cleaned:
            return cleaned  # one is invalid already, or not on the form (a code schedule)
        # Each alone first, so that the error shows at the field it is about.
        for label, given in (
            ("args", (cleaned["args"], None)),
            ("kwargs", (None, cleaned["kwargs"])),
        ):
            try:
                encode_payload(*given)
            except ScheduleError as exc:
                self.add_error(label, str(exc))
        if not self.errors:
            try:
                cleaned["args"], cleaned["kwargs"], _ = encode_payload(
                    cleaned["args"], cleaned["kwargs"]
                )
            except ScheduleError as exc:
                raise ValidationError(str(exc)) from None
        return cleaned
