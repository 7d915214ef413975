"""The ``django.tasks`` backend (Django 6.0+): ``async_queue.contrib.tasks.QueueBackend``.

``async_queue.backends.QueueBackend`` names the same class.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazily: importing this package must not import django.tasks (Django 5.2 has none).
    if name == "QueueBackend":
        from .backend import QueueBackend

        return QueueBackend
    raise AttributeError(f"module 'async_queue.contrib.tasks' has no attribute {name!r}")
