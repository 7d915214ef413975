"""System checks for powercrud (ids ``powercrud.E0xx``).

- ``E001``: ``HtmxMiddleware`` is not in ``MIDDLEWARE`` (the views read ``request.htmx``).
- ``E002``: a view filters (``filterset_fields``/``filterset_class``) but ``django_filters``
  is not in ``INSTALLED_APPS`` (its widgets' templates would be missing).
- ``E003``: a view's ``ordering`` or ``sortable_fields`` names a field its model lacks
  (``order_by()`` would fail on every list request).
- ``E004``: ``paginate_by`` or ``page_size_options`` is not a positive integer.
- ``E005``: ``settings.POWERCRUD`` is not a dict, names an unknown key, or its
  ``MAX_SELECTION`` is not a positive integer.

The view checks run for every ``PowerCRUDView`` routed in the URLconf. This module
does not import ``powercrud.views`` (which imports it): it finds the views by their
base class ``CheckedView``, which ``PowerCRUDView`` inherits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import FieldDoesNotExist
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.module_loading import import_string

from .conf import DEFAULTS, SETTING_NAME, configured

HTMX_MIDDLEWARE = "django_htmx.middleware.HtmxMiddleware"


def _is_htmx_middleware(path: str) -> bool:
    if path == HTMX_MIDDLEWARE:
        return True
    from django_htmx.middleware import HtmxMiddleware

    try:
        middleware = import_string(path)
    except ImportError:
        return False
    return isinstance(middleware, type) and issubclass(middleware, HtmxMiddleware)


@register(Tags.compatibility)
def check_htmx_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if any(_is_htmx_middleware(path) for path in settings.MIDDLEWARE):
        return []
    return [
        Error(
            "powercrud needs django-htmx's middleware: its views read request.htmx.",
            hint=f"Add {HTMX_MIDDLEWARE!r} to MIDDLEWARE (and 'django_htmx' to INSTALLED_APPS).",
            id="powercrud.E001",
        )
    ]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    value = configured()
    hint = f"For example {SETTING_NAME} = {{'MAX_SELECTION': {DEFAULTS['MAX_SELECTION']}}}."
    if not isinstance(value, dict):
        message = f"settings.{SETTING_NAME} must be a dict, not {type(value).__name__}."
        return [Error(message, hint=hint, id="powercrud.E005")]
    errors: list[CheckMessage] = [
        Error(
            f"settings.{SETTING_NAME} has an unknown key {key!r}; known keys: "
            f"{', '.join(DEFAULTS)}.",
            hint=hint,
            id="powercrud.E005",
        )
        for key in value
        if key not in DEFAULTS
    ]
    limit = value.get("MAX_SELECTION", DEFAULTS["MAX_SELECTION"])
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        errors.append(
            Error(
                f"{SETTING_NAME}['MAX_SELECTION'] must be a positive integer; got {limit!r}.",
                hint=hint,
                id="powercrud.E005",
            )
        )
    return errors


class CheckedView:
    """The base class of the views ``check_views`` covers (``PowerCRUDView`` inherits it)."""

    @classmethod
    def check(cls) -> list[CheckMessage]:
        """System check messages about this view's configuration (``check_view``)."""
        return check_view(cls)


def routed_views(patterns: list[Any] | None = None) -> Iterator[type[Any]]:
    """Every ``PowerCRUDView`` class the URLconf routes to, once each."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    seen: set[type] = set()
    stack = list(patterns)
    while stack:
        pattern = stack.pop()
        if isinstance(pattern, URLResolver):
            stack.extend(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            view_class = getattr(pattern.callback, "view_class", None)
            if (
                isinstance(view_class, type)
                and issubclass(view_class, CheckedView)
                and view_class not in seen
            ):
                seen.add(view_class)
                yield view_class


@register(Tags.urls)
def check_views(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        views = sorted(routed_views(), key=lambda view: view.__qualname__)
    except Exception:  # a broken URLconf is reported by Django's own URL checks
        return []
    return [message for view in views for message in check_view(view)]


def check_view(view: type[Any]) -> list[CheckMessage]:
    """The configuration problems of one view class."""
    name = f"{view.__module__}.{view.__qualname__}"
    errors: list[CheckMessage] = []
    filters = view.filterset_fields or getattr(view, "filterset_class", None)
    if filters and not apps.is_installed("django_filters"):
        errors.append(
            Error(
                f"{name} filters its list but 'django_filters' is not in INSTALLED_APPS.",
                hint="Add 'django_filters' to INSTALLED_APPS (pip install django-filter).",
                obj=view,
                id="powercrud.E002",
            )
        )
    model = view.model
    if model is not None:
        for attribute in ("ordering", "sortable_fields"):
            for entry in getattr(view, attribute, None) or ():
                if not isinstance(entry, str):
                    continue
                field_name = entry.lstrip("-")
                if field_name == "pk" or "__" in field_name:
                    continue
                try:
                    model._meta.get_field(field_name)
                except FieldDoesNotExist:
                    errors.append(
                        Error(
                            f"{name}.{attribute} names {entry!r}, which is not a field of "
                            f"{model._meta.label}.",
                            hint="Use names of the model's fields (a '-' prefix sorts descending).",
                            obj=view,
                            id="powercrud.E003",
                        )
                    )
    sizes = [view.paginate_by] if view.paginate_by is not None else []
    sizes += list(view.page_size_options or ()) if view.paginate_by is not None else []
    if any(not isinstance(size, int) or isinstance(size, bool) or size < 1 for size in sizes):
        errors.append(
            Error(
                f"{name}.paginate_by and page_size_options must be positive integers; "
                f"got {view.paginate_by!r} and {tuple(view.page_size_options or ())!r}.",
                hint="For example paginate_by = 25 and page_size_options = (10, 25, 50, 100), "
                "or paginate_by = None for one unpaginated page.",
                obj=view,
                id="powercrud.E004",
            )
        )
    return errors
