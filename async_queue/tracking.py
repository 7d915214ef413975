"""``async_queue.tracking``: the tracker's former path, kept so settings naming it work.

The tracker lives in ``async_queue.contrib.tracking`` (``CLASS``:
``"async_queue.tracking.Tracker"`` and ``"async_queue.contrib.tracking.Tracker"``
name the same class).
"""

from .contrib.tracking import *  # noqa: F403
from .contrib.tracking import __all__ as __all__
