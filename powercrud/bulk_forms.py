"""The bulk edit form: which fields a bulk edit may set, and what it sends to the job.

``BulkEditForm`` is ``BulkMixin.bulk_form_class``'s default; ``job_kwargs()`` is the
JSON the job function (``powercrud.jobs.bulk_edit``) receives, whether it runs in the
request or in a worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

M2M_MODE_CHOICES = [("add", "Add"), ("replace", "Replace with"), ("remove", "Remove")]


def as_json(value: Any) -> Any:
    """``value`` after a JSON round trip: exactly what a job would receive."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


class BulkEditForm(forms.Form):
    """One optional change per bulk field: tick "change", then give the value.

    For each name in ``bulk_fields`` the form has ``<name>__change`` (a checkbox),
    ``<name>`` (the model field's own form field, so choices, foreign keys and
    ``limit_choices_to`` work as in a model form) and, for many-to-many fields,
    ``<name>__mode`` (add, replace or remove). A boolean is a Yes/No choice, so
    "set to No" is explicit. ``__`` cannot occur in a model field's name.
    """

    def __init__(
        self, *args: Any, model: type[models.Model], fields: Iterable[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self.names = list(fields)
        self.required_names: set[str] = set()
        for name in self.names:
            model_field = model._meta.get_field(name)
            if not getattr(model_field, "editable", False):
                raise ImproperlyConfigured(
                    f"bulk_fields: {model._meta.label}.{name} is not an editable field."
                )
        form_fields = forms.fields_for_model(model, fields=self.names, apply_limit_choices_to=True)
        for name in self.names:
            model_field = model._meta.get_field(name)
            form_field = form_fields.get(name)
            self.check_field(name, model_field, form_field)
            assert form_field is not None
            if form_field.required:
                self.required_names.add(name)
            form_field.required = False
            form_field.initial = None  # a model default would look like a proposed value
            if isinstance(form_field, forms.BooleanField):
                form_field.widget = forms.Select(choices=[(True, "Yes"), (False, "No")])
            label = form_field.label or name
            self.fields[f"{name}__change"] = forms.BooleanField(
                required=False, label=f"Change {label}"
            )
            if model_field.many_to_many:
                self.fields[f"{name}__mode"] = forms.ChoiceField(
                    choices=M2M_MODE_CHOICES,
                    initial="add",
                    required=False,
                    label=f"How to change {label}",
                )
            self.fields[name] = form_field

    def check_field(self, name: str, model_field: Any, form_field: forms.Field | None) -> None:
        where = f"bulk_fields: {self.model._meta.label}.{name}"
        if form_field is None or getattr(model_field, "primary_key", False):
            raise ImproperlyConfigured(f"{where} is not an editable field.")
        if model_field.many_to_many and not model_field.remote_field.through._meta.auto_created:
            raise ImproperlyConfigured(
                f"{where} has a custom through model, whose extra fields bulk edit cannot fill."
            )
        if isinstance(form_field, forms.FileField):
            raise ImproperlyConfigured(f"{where} is a file field, which bulk edit cannot set.")

    def is_m2m(self, name: str) -> bool:
        return f"{name}__mode" in self.fields

    def mode(self, name: str) -> str:
        """How many-to-many field ``name`` changes: add (the default), replace or remove."""
        return self.cleaned_data.get(f"{name}__mode") or "add"

    def changed_names(self) -> list[str]:
        return [name for name in self.names if self.cleaned_data.get(f"{name}__change")]

    def rows(self) -> list[dict[str, Any]]:
        """The bound fields of each bulk field, for the template."""
        return [
            {
                "name": name,
                "change": self[f"{name}__change"],
                "value": self[name],
                "mode": self[f"{name}__mode"] if self.is_m2m(name) else None,
            }
            for name in self.names
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()  # Form.clean() returns cleaned_data, typed as optional
        cleaned = self.cleaned_data
        changed = self.changed_names()
        if not changed:
            raise forms.ValidationError("Tick at least one field to change.")
        for name in changed:
            if name in self.errors:
                continue
            value = cleaned.get(name)
            empty = value in forms.Field.empty_values or (
                isinstance(value, models.QuerySet) and not value
            )
            if self.is_m2m(name) and self.mode(name) in ("add", "remove"):
                if empty:
                    self.add_error(name, "Choose at least one.")
            elif empty and name in self.required_names:
                self.add_error(name, "This field is required.")
        return cleaned

    def job_kwargs(self) -> dict[str, Any]:
        """``changes`` and ``m2m`` for ``powercrud.jobs.bulk_edit``, as JSON."""
        changes: dict[str, Any] = {}
        m2m: dict[str, dict[str, Any]] = {}
        for name in self.changed_names():
            value = self.cleaned_data.get(name)
            model_field = self.model._meta.get_field(name)
            if self.is_m2m(name):
                m2m[name] = {
                    "mode": self.mode(name),
                    "pks": [str(obj.pk) for obj in value or []],
                }
            elif model_field.is_relation:
                target = model_field.target_field.attname  # type: ignore[union-attr]
                changes[name] = None if value is None else getattr(value, target)
            else:
                changes[name] = value
        return as_json({"changes": changes, "m2m": m2m})


__all__ = ["M2M_MODE_CHOICES", "BulkEditForm", "as_json"]
