"""A real module no job may name (row 14): importing it leaves a marker file.

The fault test runs its worker with ``ALLOWED_MODULES`` that exclude this module;
the marker (``FAULT_FORBIDDEN_MARKER``) proves it was never imported there.
"""

from __future__ import annotations

import os
from pathlib import Path

_marker = os.environ.get("FAULT_FORBIDDEN_MARKER")
if _marker:
    Path(_marker).write_text(f"imported by {os.getpid()}\n")


def touch(path: str) -> None:
    """Leave a trace if ever called."""
    Path(path).touch()
