"""The rows a user selected in one list, kept in the session.

A selection belongs to one view and one model: its session key is
``powercrud.selection:<module.ViewClass>:<app_label.model>``, so two views of the
same model never share one. Primary keys of any type (integer, UUID, text) are
stored as canonical strings (``str(model._meta.pk.to_python(value))``), in the
order they were selected, and converted back when the objects are loaded.

Adding is all or nothing: past ``POWERCRUD["MAX_SELECTION"]`` it raises
``SelectionLimitExceeded`` and the selection is unchanged, never truncated.
Callers add only primary keys they have checked exist (``existing()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import BadRequest, ValidationError
from django.db import models

from .conf import powercrud_settings

SESSION_PREFIX = "powercrud.selection"
CHUNK = 1000  # primary keys per IN (...) query, well under SQLite's parameter limit


class InvalidPrimaryKey(BadRequest):
    """A posted primary key is not a valid value of the model's primary key (HTTP 400)."""


class SelectionLimitExceeded(Exception):
    """Selecting more would go past ``POWERCRUD["MAX_SELECTION"]``; nothing was changed.

    ``str()`` names the setting, for developers and logs; ``user_message`` is what the
    user is shown, in which a setting's name would mean nothing.
    """

    def __init__(self, wanted: int, limit: int) -> None:
        self.wanted = wanted
        self.limit = limit
        self.user_message = (
            f"That would select {wanted:,} rows, over the limit of {limit:,}. Nothing was "
            "changed: narrow the filter, or clear the selection first."
        )
        super().__init__(
            f"That would select {wanted:,} rows, over the limit of {limit:,} "
            "(POWERCRUD['MAX_SELECTION'])."
        )


def chunked(items: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Selection:
    """The selected primary keys of ``model`` in the view that owns ``key``."""

    def __init__(
        self,
        session: SessionBase,
        key: str,
        model: type[models.Model],
        limit: int | None = None,
    ) -> None:
        self.session = session
        self.key = key
        self.model = model
        self._limit = limit
        self._pks: list[str] | None = None

    @staticmethod
    def key_for(view_class: type, model: type[models.Model]) -> str:
        """The session key of the selection of ``view_class`` over ``model``."""
        view = f"{view_class.__module__}.{view_class.__qualname__}"
        return f"{SESSION_PREFIX}:{view}:{model._meta.label_lower}"

    @property
    def limit(self) -> int:
        return powercrud_settings.MAX_SELECTION if self._limit is None else self._limit

    # -- reading ----------------------------------------------------------------------

    @property
    def pks(self) -> list[str]:
        """The selected primary keys, as canonical strings, in selection order."""
        if self._pks is None:
            stored = self.session.get(self.key)
            self._pks = [str(pk) for pk in stored] if isinstance(stored, list) else []
        return self._pks

    def __len__(self) -> int:
        return len(self.pks)

    def __iter__(self) -> Iterator[str]:
        return iter(self.pks)

    def __contains__(self, pk: object) -> bool:
        return self.as_set().__contains__(str(pk))

    def as_set(self) -> frozenset[str]:
        return frozenset(self.pks)

    def canonical(self, value: Any) -> str:
        """``value`` as the string this selection stores; ``InvalidPrimaryKey`` if it is not one."""
        try:
            python = self.model._meta.pk.to_python(value)
        except ValidationError:
            python = None
        if python is None or python == "":
            raise InvalidPrimaryKey(
                f"{str(value)[:60]!r} is not a valid {self.model._meta.verbose_name} primary key."
            )
        return str(python)

    def python_values(self, pks: Iterable[str] | None = None) -> list[Any]:
        """Primary keys (default: the selected ones) as the model's Python values."""
        to_python = self.model._meta.pk.to_python
        return [to_python(pk) for pk in (self.pks if pks is None else pks)]

    def existing(self, queryset: models.QuerySet, values: Iterable[Any]) -> list[str]:
        """Those of ``values`` that are rows of ``queryset``, canonical and in the given order."""
        wanted = list(dict.fromkeys(self.canonical(value) for value in values))
        found: set[str] = set()
        for chunk in chunked(wanted):
            rows = queryset.filter(pk__in=self.python_values(chunk))
            rows = rows.order_by().values_list("pk", flat=True)
            found.update(str(pk) for pk in rows)
        return [pk for pk in wanted if pk in found]

    def queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        """The selected rows of ``queryset`` (one ``pk IN (...)`` filter)."""
        return queryset.filter(pk__in=self.python_values())

    # -- changing ---------------------------------------------------------------------

    def add(self, pks: Iterable[str]) -> int:
        """Select ``pks`` (canonical strings); returns how many were new."""
        current = self.pks
        present = set(current)
        new = [pk for pk in dict.fromkeys(pks) if pk not in present]
        self._check_limit(len(current) + len(new))
        if new:
            self._store([*current, *new])
        return len(new)

    def remove(self, pks: Iterable[str]) -> int:
        """Deselect ``pks``; returns how many were selected."""
        gone = set(pks)
        kept = [pk for pk in self.pks if pk not in gone]
        removed = len(self.pks) - len(kept)
        if removed:
            self._store(kept)
        return removed

    def replace(self, pks: Iterable[str]) -> None:
        """Select exactly ``pks``."""
        wanted = list(dict.fromkeys(pks))
        self._check_limit(len(wanted))
        self._store(wanted)

    def toggle(self, pk: str) -> bool:
        """Select ``pk`` if it was not selected, else deselect it; returns whether it is now."""
        if pk in self:
            self.remove([pk])
            return False
        self.add([pk])
        return True

    def clear(self) -> None:
        self._store([])

    def _check_limit(self, wanted: int) -> None:
        if wanted > self.limit:
            raise SelectionLimitExceeded(wanted, self.limit)

    def _store(self, pks: list[str]) -> None:
        self._pks = pks
        if pks:
            self.session[self.key] = pks
        else:
            self.session.pop(self.key, None)
        self.session.modified = True
