"""Task arguments under Django's contract: ``django.utils.json.normalize_json``.

Django's own ``TaskResult`` normalises ``args`` and ``kwargs`` with
``normalize_json``: tuples become lists, UTF-8 bytes become text, and anything
that is not JSON (a datetime, a Decimal, a UUID, a set, a model instance) raises
its ``TypeError`` ("Unsupported type: ..."). The backend applies exactly that,
before ``schedule()``'s own conversion (which would have turned a datetime into a
string the task then receives). The error raised is also a ``ScheduleError``
naming the element and the fix, so that code written against either contract
catches it, and no input can end in a ``RecursionError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db.models import Model
from django.utils.json import normalize_json

from ...exceptions import ScheduleError


class UnsupportedTaskValue(ScheduleError, TypeError):
    """A task argument Django's ``normalize_json`` refuses: a ``TypeError``, as Django raises,
    and a ``ScheduleError``, as ``schedule()`` raises."""


def normalized_arguments(args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    """``args`` and ``kwargs`` as Django's ``TaskResult`` would hold them (and the task receive)."""
    return _normalized("args", args), _normalized("kwargs", kwargs)


def _normalized(label: str, value: Any) -> Any:
    try:
        return normalize_json(value)
    except RecursionError:
        # normalize_json recurses once per level; schedule() would refuse the depth anyway.
        raise ScheduleError(
            f"The task's {label} are nested too deeply to store as JSON; flatten them, or store "
            "the data in your own table and pass its key."
        ) from None
    except (TypeError, ValueError) as exc:
        path, item = _first_refused(label, value)
        error = UnsupportedTaskValue if isinstance(exc, TypeError) else ScheduleError
        raise error(f"{path}: {exc}. {_hint(item)}".rstrip()) from None


def _first_refused(label: str, value: Any) -> tuple[str, Any]:
    """The path and value of the first element ``normalize_json`` refuses, in its order.

    Walked without recursion, so that a deep value cannot exhaust the stack here.
    """
    stack: list[tuple[str, Any]] = [(label, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, Mapping):
            children = []
            for key, child in item.items():
                try:
                    normalize_json(key)
                except (TypeError, ValueError, RecursionError):
                    return f"{path} key {key!r}", key
                children.append((f"{path}[{key!r}]", child))
            stack.extend(reversed(children))
        elif isinstance(item, Sequence) and not isinstance(item, str | bytes):
            stack.extend(reversed([(f"{path}[{i}]", child) for i, child in enumerate(item)]))
        else:
            try:
                normalize_json(item)
            except (TypeError, ValueError):
                return path, item
    return label, value  # refused as a whole (an unhashable key once normalised, say)


def _hint(item: Any) -> str:
    if isinstance(item, Model):
        return "Pass its primary key and load the object inside the task."
    if isinstance(item, set | frozenset):
        return "Pass a list instead."
    if isinstance(item, bytes | bytearray):
        return "Pass text (e.g. base64) instead."
    if hasattr(item, "isoformat") or type(item).__name__ in ("Decimal", "UUID"):
        return "Pass it as a string (str() or isoformat()) and convert it back in the task."
    return ""
