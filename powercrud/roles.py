"""Roles of the endpoints powercrud adds to neapolitan's five, and what each role may do.

Neapolitan's ``Role`` maps list, detail, create, update and delete to handler methods;
its list role answers GET only. The endpoints powercrud adds (selection and bulk
operations) change state, so each gets a ``PowerRole`` whose ``handlers()`` declare
POST: ``CRUDView.as_view(role=PowerRole.SELECT)`` binds ``post`` to the view's
``post_select`` method, and any other method answers 405. ``BULK_STATUS`` is the one
GET role: a job's progress, polled by the progress modal.

Every role, neapolitan's and powercrud's, needs one model permission
(``permission_action()``): ``view`` to read and select, ``add``, ``change`` (bulk edit
too) and ``delete`` (bulk delete too).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, URLPattern, path, reverse
from neapolitan.views import Role

if TYPE_CHECKING:
    from neapolitan.views import CRUDView


class PowerRole(enum.Enum):
    """The endpoints powercrud adds; each value is its URL path and URL name component."""

    SELECT = "select"
    BULK_EDIT = "bulk-edit"
    BULK_DELETE = "bulk-delete"
    BULK_STATUS = "bulk-status"

    def handlers(self) -> dict[str, str]:
        """HTTP method -> name of the view method that handles it."""
        match self:
            case PowerRole.SELECT:
                return {"post": "post_select"}
            case PowerRole.BULK_EDIT:
                return {"post": "post_bulk_edit"}
            case PowerRole.BULK_DELETE:
                return {"post": "post_bulk_delete"}
            case PowerRole.BULK_STATUS:
                return {"get": "bulk_status"}

    def extra_initkwargs(self) -> dict[str, Any]:
        match self:
            case PowerRole.SELECT:
                return {"template_name_suffix": "_list"}
            case PowerRole.BULK_EDIT:
                return {"template_name_suffix": "_bulk_edit"}
            case PowerRole.BULK_DELETE:
                return {"template_name_suffix": "_bulk_delete"}
            case PowerRole.BULK_STATUS:
                return {"template_name_suffix": "_bulk_status"}

    @property
    def url_name_component(self) -> str:
        return self.value

    @property
    def url_kwargs(self) -> tuple[str, ...]:
        """Names of the keyword arguments its URL takes."""
        return ("job_pk",) if self is PowerRole.BULK_STATUS else ()

    def url_pattern(self, view_cls: type[CRUDView]) -> str:
        if self is PowerRole.BULK_STATUS:
            return f"{view_cls.url_base}/{self.value}/<int:job_pk>/"
        return f"{view_cls.url_base}/{self.value}/"

    def url_name(self, view_cls: type[CRUDView] | CRUDView) -> str:
        return f"{view_cls.url_base}-{self.url_name_component}"

    def get_url(self, view_cls: type[CRUDView]) -> URLPattern:
        missing = [name for name in self.handlers().values() if not hasattr(view_cls, name)]
        if missing:
            raise ImproperlyConfigured(
                f"{view_cls.__name__} has no {', '.join(missing)}() method, so it cannot "
                f"serve PowerRole.{self.name}; implement it or leave the role out."
            )
        return path(
            self.url_pattern(view_cls),
            view_cls.as_view(role=self),
            name=self.url_name(view_cls),
        )

    def reverse(self, view: type[CRUDView] | CRUDView, **kwargs: Any) -> str:
        """The URL of this role for ``view`` (``job_pk=`` for ``BULK_STATUS``)."""
        return reverse(self.url_name(view), kwargs=kwargs or None)

    def maybe_reverse(self, view: type[CRUDView] | CRUDView, **kwargs: Any) -> str | None:
        try:
            return self.reverse(view, **kwargs)
        except NoReverseMatch:
            return None


def supported_roles(view_cls: type[CRUDView]) -> list[PowerRole]:
    """The power roles whose handler methods ``view_cls`` implements."""
    return [
        role
        for role in PowerRole
        if all(hasattr(view_cls, name) for name in role.handlers().values())
    ]


def get_power_urls(
    view_cls: type[CRUDView], roles: Iterable[PowerRole] | None = None
) -> list[URLPattern]:
    """URL patterns of ``roles`` for ``view_cls`` (default: every role it implements).

    Naming a role whose handler method the view lacks raises ``ImproperlyConfigured``.
    """
    chosen = supported_roles(view_cls) if roles is None else list(roles)
    return [role.get_url(view_cls) for role in chosen]


PERMISSION_ACTIONS: dict[Role | PowerRole, str] = {
    Role.LIST: "view",
    Role.DETAIL: "view",
    Role.CREATE: "add",
    Role.UPDATE: "change",
    Role.DELETE: "delete",
    PowerRole.SELECT: "view",
    PowerRole.BULK_EDIT: "change",
    PowerRole.BULK_DELETE: "delete",
    PowerRole.BULK_STATUS: "view",
}


def permission_action(role: Role | PowerRole) -> str:
    """The model permission action (``view``/``add``/``change``/``delete``) ``role`` needs."""
    try:
        return PERMISSION_ACTIONS[role]
    except KeyError:
        raise ImproperlyConfigured(
            f"No permission is defined for role {role!r}; override has_permission()."
        ) from None


__all__ = ["PowerRole", "get_power_urls", "permission_action", "supported_roles"]
