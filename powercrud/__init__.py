"""powercrud: htmx CRUD views on neapolitan whose bulk operations run through async_queue.

    from powercrud import PowerCRUDView

    class BookView(PowerCRUDView):
        model = Book
        fields = ["title", "author", "status"]
        filterset_fields = ["status", "author"]
        bulk_fields = ["status"]

    urlpatterns += BookView.get_urls()

Names are imported lazily, so importing this package never imports models.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .roles import PowerRole, get_power_urls
    from .views import PowerCRUDView

__all__ = ["PowerCRUDView", "PowerRole", "get_power_urls"]

_EXPORTS = {
    "PowerCRUDView": "views",
    "PowerRole": "roles",
    "get_power_urls": "roles",
}


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'powercrud' has no attribute {name!r}") from None
    return getattr(import_module(f".{module}", __name__), name)
