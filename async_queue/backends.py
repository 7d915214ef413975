"""``async_queue.backends.QueueBackend``: the settings path of the django.tasks backend.

The backend lives in ``async_queue.contrib.tasks``; this path keeps ``TASKS``
settings that name it working.
"""

from .contrib.tasks.backend import QueueBackend

__all__ = ["QueueBackend"]
