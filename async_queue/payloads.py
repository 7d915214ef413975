"""What a job row's JSON may hold: the same rules on every database.

A value is stored only if both databases store it and give it back unchanged,
so that a payload that works on SQLite cannot fail on PostgreSQL later (where
the INSERT runs in an ``on_commit`` hook, after the caller has committed):

- no NUL character (``"\\x00"``) in any string or key: PostgreSQL's ``jsonb``
  refuses ``\\u0000``;
- no lone surrogate (``"\\ud800"``): it is not Unicode text, and PostgreSQL
  refuses it too;
- integers within 64 bits (``-2**63 .. 2**63 - 1``): SQLite's JSON functions
  read larger ones back as floating point;
- at most ``MAX_DEPTH`` levels of nesting (``args``, ``kwargs``, ``meta`` and a
  result are level 1: ``kwargs={"a": [[1]]}`` has three levels);
- no NaN or infinity (they are not JSON).

One difference is left as it is: PostgreSQL stores JSON numbers as decimals,
so a float with a large exponent (``1e20``) comes back as the integer it spells.

``check()`` walks a decoded value without recursion, so that no input can
exhaust the stack, and names the first element that breaks a rule.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from .exceptions import ScheduleError

MAX_DEPTH = 64
INT64 = (-(2**63), 2**63 - 1)


def dumps(value: Any, *, sort_keys: bool = True) -> str:
    """Compact JSON with Django's encoder; ``ValueError`` for NaN, ``TypeError`` if unencodable.

    ``sort_keys``: the stored text of equal values is equal on every backend.
    """
    return json.dumps(
        value, cls=DjangoJSONEncoder, allow_nan=False, sort_keys=sort_keys, separators=(",", ":")
    )


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\x00), which PostgreSQL cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate ({text[exc.start]!r} at position {exc.start}), "
            "which is not Unicode text"
        )
    return None


def check(label: str, value: Any, error: type[Exception] = ScheduleError) -> None:
    """Raise ``error`` naming the first element of decoded JSON ``value`` that breaks a rule."""
    stack: list[tuple[str, Any, int]] = [(label, value, 1)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, str):
            if (problem := _text_problem(item)) is not None:
                raise error(f"{path} {problem}.")
        elif isinstance(item, bool) or item is None or isinstance(item, float):
            continue
        elif isinstance(item, int):
            if not INT64[0] <= item <= INT64[1]:
                raise error(
                    f"{path} = {item} does not fit in 64 bits; pass it as a string, or split it."
                )
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                where = path if len(path) <= 120 else f"{path[:100]}..."
                raise error(
                    f"{where} is nested more than {MAX_DEPTH} levels deep; flatten it, or "
                    "store the data in your own table and pass its key."
                )
            # Pushed in reverse, so that the first bad element is the one named.
            if isinstance(item, dict):
                for key, child in reversed(item.items()):
                    if (problem := _text_problem(str(key))) is not None:
                        raise error(f"{path} has a key that {problem}.")
                    stack.append((f"{path}[{key!r}]", child, depth + 1))
            else:
                for index in range(len(item) - 1, -1, -1):
                    stack.append((f"{path}[{index}]", item[index], depth + 1))
        else:
            raise error(f"{path} is a {type(item).__name__}, which is not JSON.")
