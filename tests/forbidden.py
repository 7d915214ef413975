"""A real module outside the installed apps (rows 14 and 19): importing it leaves a marker.

No job may name it, and a worker never imports a row's module outside the
installed apps; the marker (``FAULT_FORBIDDEN_MARKER``) proves it was never
imported there. ``touch`` and ``Touch`` leave a trace file if ever called.
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


class Touch:
    """Leaves a trace (``FAULT_TRACE``) when instantiated: what ``load_backend()`` would do."""

    def __init__(self, path: str = "") -> None:
        Path(path or os.environ["FAULT_TRACE"]).touch()
