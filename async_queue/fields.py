"""The JSON field of job rows: any stored value loads, however deep or malformed.

A row can hold what ``schedule()`` would refuse (a forged row, or one written by
an older version): JSON nested deeper than Python's decoder recurses, or text
that is not JSON at all. Loading such a value must not break the worker, the
dashboard or the admin for everyone, so it loads as an ``UnreadableJSON``: a
``str`` subclass holding a note of what was wrong. The worker fails a job whose
arguments are unreadable (calling nothing); pages show the note.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import models
from django.db.models.fields.json import KeyTransform


class UnreadableJSON(str):
    """A stored JSON value that could not be decoded; the text says why."""

    __slots__ = ()


class JobJSONField(models.JSONField):
    """``JSONField`` whose decoding never raises (see the module docstring)."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        try:
            if value is None or isinstance(expression, KeyTransform):
                # A key's value (SQLite gives strings unquoted): Django's own handling.
                return super().from_db_value(value, expression, connection)
            # Not super(): on text that is not JSON it returns the text itself, which
            # would pass for a decoded string.
            return json.loads(value, cls=self.decoder)
        except RecursionError:
            return UnreadableJSON(
                f"[unreadable: JSON nested too deeply to decode ({len(value):,} characters)]"
            )
        except (TypeError, ValueError) as exc:
            return UnreadableJSON(f"[unreadable: not valid JSON ({exc})]")
