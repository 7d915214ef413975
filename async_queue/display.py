"""How pages show what a job row holds: redacted, bounded, and whatever the row holds.

A row can hold what ``schedule()`` would refuse (a forged row, or one written by
an older version): JSON nested a thousand levels deep, a 10 MB result, a huge
string, a million keys, or text that does not decode at all (``UnreadableJSON``).
Every page that shows a job must still answer, quickly and with a page of
reasonable size, for everyone who may see that job. So:

- JSON is written by an iterative walk (no recursion, so no depth can break it),
  redacting as it goes (``redaction``), and stops after ``SHOW_MAX_BYTES`` (UTF-8)
  with a note of how much was left out (``… [N more bytes not shown]``).
- Text (errors, tracebacks, progress messages) is redacted and cut the same way.
- An ``UnreadableJSON`` value shows its note, as does an ``Omitted`` one (a list
  does not decode big arguments, see ``presenters.with_argument_text``).

Work is bounded too: a huge string is cut before it is redacted (with a margin,
so that a credential straddling the cut is still recognised). What a cut left
out is counted in compact JSON by the C encoder, or, for a value too deep for
it, by walking at most ``COUNT_STEPS`` values ("more than N bytes").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.text import Truncator

from .conf import queue_settings
from .fields import UnreadableJSON
from .redaction import REDACTED, is_secret, redact_text

# A string is cut this many characters past what can be shown before it is
# redacted, so that a URL or PEM block crossing the cut is still recognised.
REDACT_MARGIN = 8192
# How many values of a value too deep for the C encoder are walked to size it.
COUNT_STEPS = 100_000


class Omitted(str):
    """A value a page did not load (too big for a list row); the text says how big."""

    __slots__ = ()


NOTES = (UnreadableJSON, Omitted)  # shown as their text, never as JSON

_encoder = DjangoJSONEncoder(ensure_ascii=False)
_REDACTED_JSON = json.dumps(REDACTED, ensure_ascii=False)


def _scalar(value: Any) -> str:
    """The JSON text of a value that is not a container."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    try:  # dates, decimals, UUIDs... as schedule() would have stored them
        return json.dumps(_encoder.default(value), ensure_ascii=False)
    except TypeError:
        return json.dumps(str(value), ensure_ascii=False)


def _key(key: Any) -> str:
    """A dict key as JSON writes it: always a string."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return str(key)


def _nbytes(text: str) -> int:
    return len(text.encode())


class _Walk:
    """The pieces of one value's JSON text, each with its size in compact JSON.

    The compact size of what was shown, taken from the compact size of the whole
    value, is what a cut leaves out, whatever the indentation.
    """

    def __init__(self, indent: int | None, budget: int) -> None:
        self.indent = indent
        self.budget = budget  # bytes the reader may still show

    def string(self, text: str) -> tuple[str, int]:
        """A JSON string, redacted; cut when it cannot be shown whole."""
        window = self.budget + REDACT_MARGIN
        if len(text) <= window:
            shown = json.dumps(redact_text(text), ensure_ascii=False)
            return shown, _nbytes(shown)
        shown = json.dumps(redact_text(text[:window]), ensure_ascii=False)[:-1]
        return shown, _nbytes(shown) + 1

    def value(self, value: Any) -> tuple[str, int]:
        if isinstance(value, str):
            return self.string(value)
        text = _scalar(value)
        return text, _nbytes(text)

    def pieces(self, root: Any) -> Iterator[tuple[str, int]]:
        indent = self.indent
        newline = "\n" if indent else ""
        item_separator = "," if indent else ", "
        # [iterator over a container's entries, their depth, is it a dict, first entry?]
        stack: list[list[Any]] = []
        pending: Any = root
        depth = 0
        while True:
            if isinstance(pending, dict) and pending:
                yield "{", 1
                stack.append([iter(pending.items()), depth + 1, True, True])
            elif isinstance(pending, list | tuple) and pending:
                yield "[", 1
                stack.append([iter(pending), depth + 1, False, True])
            elif isinstance(pending, dict):
                yield "{}", 2
            elif isinstance(pending, list | tuple):
                yield "[]", 2
            else:
                yield self.value(pending)
            while stack:
                frame = stack[-1]
                entries, depth, is_dict, first = frame
                entry: Any = next(entries, _END)
                if entry is _END:
                    stack.pop()
                    pad = " " * (indent * (depth - 1)) if indent else ""
                    yield f"{newline}{pad}{'}' if is_dict else ']'}", 1
                    continue
                frame[3] = False
                pad = " " * (indent * depth) if indent else ""
                yield f"{'' if first else item_separator}{newline}{pad}", 0 if first else 1
                if not is_dict:
                    pending = entry
                    break
                key, pending = entry
                key_text, key_size = self.string(_key(key))
                yield f"{key_text}: ", key_size + 1
                if is_secret(key):
                    yield _REDACTED_JSON, _nbytes(_REDACTED_JSON)
                    continue
                break
            else:
                return


_END = object()


def _cut(text: str, size: int) -> str:
    """The longest start of ``text`` of at most ``size`` UTF-8 bytes."""
    return text.encode()[:size].decode(errors="ignore")


def compact_size(value: Any) -> tuple[int, bool]:
    """The size of ``value`` as compact JSON, and whether it is exact.

    The C encoder when it can (fast); for a value too deep for it, an iterative
    count that stops after ``COUNT_STEPS`` values (a lower bound).
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (RecursionError, ValueError, TypeError):
        pass
    else:
        return _nbytes(text), True
    size = 0
    for steps, (_, piece) in enumerate(_Walk(None, 0).pieces(value)):
        if steps >= COUNT_STEPS:
            return size, False
        size += piece
    return size, True


def more_note(more: int, exact: bool = True) -> str:
    """The note that ends a value cut for display."""
    return f"… [{'' if exact else 'more than '}{more:,} more bytes not shown]"


def show_json(
    value: Any, indent: int | None = 2, limit: int | None = None, count: bool = True
) -> str:
    """``value`` as JSON text for a page: redacted, at most ``limit`` bytes and a note.

    ``limit`` defaults to ``SHOW_MAX_BYTES``; ``indent=None`` writes one line (with
    ``", "`` and ``": "`` separators). A cut value ends with a note of how many
    bytes (of compact JSON) were left out, or just ``…`` when ``count`` is false.
    An ``UnreadableJSON`` value shows its note.
    """
    limit = queue_settings.SHOW_MAX_BYTES if limit is None else limit
    if isinstance(value, NOTES):
        return show_text(str(value), limit)
    walk = _Walk(indent, limit)
    parts: list[str] = []
    used = shown = 0
    for text, size in walk.pieces(value):
        length = _nbytes(text)
        if used + length <= limit:
            parts.append(text)
            used += length
            shown += size
            walk.budget = limit - used
            continue
        kept = _cut(text, limit - used)
        parts.append(kept)
        shown += min(size, _nbytes(kept))
        break
    else:
        return "".join(parts)
    if not count:
        return "".join(parts) + "…"
    total, exact = compact_size(value)
    more = max(total - shown, 0)
    return "".join(parts) + ("\n" if indent else " ") + more_note(more, exact)


def show_text(text: str, limit: int | None = None) -> str:
    """``text`` for a page: credentials redacted, at most ``limit`` bytes and a note."""
    limit = queue_settings.SHOW_MAX_BYTES if limit is None else limit
    if not text:
        return text or ""
    window = limit + REDACT_MARGIN
    shown = redact_text(text if len(text) <= window else text[:window])
    size = _nbytes(shown)
    if len(text) <= window and size <= limit:
        return shown
    kept = _cut(shown, limit)
    total = size if len(text) <= window else _nbytes(text)
    return f"{kept}\n{more_note(total - _nbytes(kept))}"


def show_line(text: str, chars: int) -> str:
    """``text`` redacted and truncated to ``chars`` characters (for one line of a list)."""
    if not text:
        return text or ""
    return Truncator(redact_text(text[: chars + REDACT_MARGIN])).chars(chars)


def call_summary(name: str, args: Any, kwargs: Any, limit: int = 120) -> str:
    """``fn(1, "a", key=value)`` with secrets redacted, cut to ``limit`` characters.

    Each argument is written with a budget of ``limit`` bytes, so a huge or deep
    argument costs no more than a small one.
    """
    budget = limit * 4  # bytes of UTF-8 for ``limit`` characters, at most
    parts: list[str] = []
    used = 0

    def add(text: str) -> bool:
        nonlocal used
        parts.append(text)
        used += len(text) + 2
        return used <= limit

    if isinstance(args, NOTES) or isinstance(kwargs, NOTES):
        note = args if isinstance(args, NOTES) else kwargs
        add(show_line(str(note), limit))
    else:
        for arg in args if isinstance(args, list | tuple) else [args]:
            if not add(show_json(arg, None, budget, count=False)):
                break
        else:
            if isinstance(kwargs, dict):
                for key, value in kwargs.items():
                    shown = (
                        _REDACTED_JSON
                        if is_secret(key)
                        else show_json(value, None, budget, count=False)
                    )
                    if not add(f"{show_line(_key(key), limit)}={shown}"):
                        break
            elif kwargs:
                add(f"**{show_json(kwargs, None, budget, count=False)}")
    call = f"{show_line(name, limit).rpartition('.')[2]}({', '.join(parts)})"
    return Truncator(call).chars(limit)
