"""``PowerCRUDView``: neapolitan's ``CRUDView`` with htmx lists, modals, permissions and conflicts.

Configuration is class attributes; behaviour changes by overriding a ``get_*`` hook.

- **The list** (filter, sort, paginate, the table's cells): ``powercrud.listing.ListMixin``.
- **Create, detail, update and delete** render their page, or, for an htmx request,
  the page's partial into the list's modal. An invalid form answers 422 with the
  form; a successful htmx write answers 204 with ``HX-Trigger`` events that close the
  modal (``powercrud:close-modal``) and refresh the table (``powercrud:changed``); a
  plain one redirects.
- **Permissions**: every route needs its model permission (``roles.permission_action``):
  anonymous users are sent to log in, others get 403. ``can`` in the context says
  which buttons to show.
- **Conflicts**: updating or deleting an object a queued or running job declared
  (``powercrud.conflicts``) answers 409 with the conflict notice (and the user's
  bound form). The write runs in ``transaction.atomic()`` inside ``async_queue.hold()``,
  so a job starting between the check and the write makes it fail with the same notice.
- **htmx**: "does the request want a fragment" and the ``HX-Trigger`` events are
  async_queue's helpers (``wants_fragment``, ``hx_trigger``), shared with its dashboard.
- **Roles**: neapolitan's ``Role`` plus powercrud's POST roles (``roles.PowerRole``),
  whose URLs the ``BulkMixin`` adds through ``get_bulk_urls()``. HEAD works on every
  GET route; other methods answer 405.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_permission_codename
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import models, router, transaction
from django.db.models.deletion import ProtectedError, RestrictedError
from django.forms import BaseForm, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.template.response import TemplateResponse
from django.urls import URLPattern
from django.utils.cache import patch_vary_headers
from django.utils.decorators import classonlymethod
from django.utils.functional import cached_property, classproperty
from django.utils.text import capfirst
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails
from neapolitan.views import CRUDView, Role

from async_queue import Conflict, hold, htmx_details, hx_trigger, lock_keys, wants_fragment

from . import conflicts
from .bulk import BulkMixin
from .checks import CheckedView
from .listing import Column, ListMixin, PageLink, Row
from .presenters import CHANGED_EVENT, CLOSE_MODAL_EVENT
from .roles import PowerRole, permission_action
from .roles import get_power_urls as power_urls

ACTIONS = ("view", "add", "change", "delete")
DEFAULT_BASE = "base.html"
FALLBACK_BASE = "powercrud/base.html"
FRAGMENTS = {
    Role.LIST: "results",
    Role.DETAIL: "detail",
    Role.CREATE: "form",
    Role.UPDATE: "form",
    Role.DELETE: "confirm_delete",
}


class Partials:
    """``partials.table`` in a template: the partial's names in fallback order."""

    def __init__(self, view: PowerCRUDView) -> None:
        self.view = view

    def __getitem__(self, name: str) -> list[str]:
        return self.view.get_partial_template_names(name)


class PowerCRUDView(BulkMixin, ListMixin, CheckedView, CRUDView):
    """A neapolitan ``CRUDView`` with htmx lists and modals, permissions and conflict checks.

    ``urlpatterns += BookView.get_urls()`` gives every route: neapolitan's five
    (``book-list``, ``book-create``, ``book-detail``, ``book-update``, ``book-delete``)
    and the bulk endpoints of ``get_bulk_urls()``. ``BookView.check()`` lists the class's
    configuration problems (the system checks run it for every routed view).
    """

    #: The template the pages extend; it must have ``title`` and ``content`` blocks. A
    #: project without a ``base.html`` gets powercrud's plain frame (``get_base_template``).
    base_template: str = DEFAULT_BASE
    #: Whether the pages load the vendored htmx (turn off if ``base_template`` does).
    include_htmx: bool = True

    def get_base_template(self) -> str:
        """The template the pages extend: ``base_template``, or ``powercrud/base.html``.

        The fallback serves when ``base_template`` is the default, ``base.html``, and the
        project has none (as a new ``startproject`` has not), so the pages still render.
        """
        if self.base_template != DEFAULT_BASE:
            return self.base_template
        try:
            get_template(DEFAULT_BASE)
        except TemplateDoesNotExist:
            return FALLBACK_BASE
        return DEFAULT_BASE

    # -- routing ---------------------------------------------------------------------

    @classproperty
    def path_converter(cls) -> str:
        """The converter of the lookup field: ``int``, ``uuid`` or ``str`` (set it to override)."""
        if cls.model is None:
            return "int"
        opts = cls.model._meta
        field = opts.pk if cls.lookup_field == "pk" else opts.get_field(cls.lookup_field)
        if isinstance(field, models.UUIDField):
            return "uuid"
        if isinstance(field, models.IntegerField):
            return "int"
        return "str"

    @classonlymethod
    def get_urls(cls, roles: Iterable[Role | PowerRole] | None = None) -> list[URLPattern]:
        """URL patterns of ``roles`` (default: neapolitan's five and the bulk endpoints).

        Powercrud's patterns come first: with a ``str`` lookup, ``book/select/`` would
        otherwise resolve as the detail page of the object whose key is ``select``.
        """
        if roles is None:
            return [*cls.get_bulk_urls(), *super().get_urls()]
        roles = list(roles)
        power = [role for role in roles if isinstance(role, PowerRole)]
        plain = [role for role in roles if not isinstance(role, PowerRole)]
        return [*power_urls(cls, power), *super().get_urls(plain)]

    @classonlymethod
    def get_power_urls(cls, roles: Iterable[PowerRole] | None = None) -> list[URLPattern]:
        """URL patterns of these power roles (default: every one the view implements)."""
        return power_urls(cls, roles)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # neapolitan binds the role's handlers after setup(), where Django aliases HEAD.
        if hasattr(self, "get") and not hasattr(self, "head"):
            self.head = self.get
        method = (request.method or "").lower()
        if method not in self.http_method_names or not hasattr(self, method):
            return self.http_method_not_allowed(request, *args, **kwargs)
        if method != "options" and not self.has_permission():
            return self.handle_no_permission()
        response = super().dispatch(request, *args, **kwargs)
        patch_vary_headers(response, ("HX-Request",))
        return response

    # -- permissions -----------------------------------------------------------------

    def has_permission(self, role: Role | PowerRole | None = None) -> bool:
        """Whether the user may use ``role`` (default: this request's role)."""
        return self.can[permission_action(role or self.role)]

    def user_can(self, action: str) -> bool:
        """Whether the user has the model permission ``action`` (view, add, change, delete).

        As in the admin, the change permission also allows viewing.
        """
        user = self.request.user
        opts = self.model._meta
        if user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}"):
            return True
        change = f"{opts.app_label}.{get_permission_codename('change', opts)}"
        return action == "view" and user.has_perm(change)

    @cached_property
    def can(self) -> dict[str, bool]:
        """``{"view": ..., "add": ..., "change": ..., "delete": ...}`` for the user."""
        return {action: self.user_can(action) for action in ACTIONS}

    def handle_no_permission(self) -> HttpResponse:
        if self.request.user.is_authenticated:
            raise PermissionDenied
        if self.htmx:
            # Log in, then come back to the page, not to the fragment it asked for.
            here = self.htmx.current_url_abs_path or self.request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(here).url)
        return redirect_to_login(self.request.get_full_path())

    # -- htmx ------------------------------------------------------------------------

    @cached_property
    def htmx(self) -> HtmxDetails:
        """``request.htmx``, also when ``HtmxMiddleware`` is not installed (see check E001)."""
        return htmx_details(self.request)

    @cached_property
    def wants_fragment(self) -> bool:
        """An htmx request for a piece of the page (not boosted, not a history restore)."""
        return wants_fragment(self.request)

    # -- object pages ----------------------------------------------------------------

    def get_object(self) -> models.Model:
        obj = super().get_object()
        # Before a form changes it in memory: the title shown, and the keys to lock.
        self.object_title = str(obj)
        self.lock_keys = lock_keys(self.get_lock_targets(obj))
        return obj

    def get_lock_targets(self, obj: models.Model) -> list[Any]:
        """What an edit or deletion of ``obj`` must not overlap (add parent objects here)."""
        return [obj]

    def find_conflict(self, obj: models.Model) -> Conflict | None:
        """The jobs that declared ``obj`` (queued or running), as a ``Conflict``, or None."""
        return conflicts.find_conflict(self.lock_keys)

    def detail(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = self.get_object()
        fields = self.get_detail_fields()
        details = [(self.get_label(name), self.get_cell(self.object, name)) for name in fields]
        return self.render_to_response(self.get_context_data(details=details))

    def show_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """GET handler of create and update; 409 with the form when the object is busy."""
        if self.role == Role.UPDATE:
            self.object = self.get_object()
        form = self.get_form(instance=self.object)
        if self.object is not None and (conflict := self.find_conflict(self.object)):
            return self.conflict_response(conflict, form=form)
        return self.render_to_response(self.get_context_data(form=form))

    def process_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """POST handler of create and update; a busy object keeps the input on screen."""
        if self.role == Role.UPDATE:
            self.object = self.get_object()
        form = self.get_form(data=request.POST, files=request.FILES, instance=self.object)
        if self.object is not None and (conflict := self.find_conflict(self.object)):
            return self.conflict_response(conflict, form=form)
        if form.is_valid():
            return self.form_valid(form)
        return self.form_invalid(form)

    def save_form(self, form: ModelForm) -> models.Model:
        """Save ``form`` holding the object's locks, in one transaction (may raise Conflict)."""
        using = router.db_for_write(self.model, instance=form.instance)
        with transaction.atomic(using=using):
            if self.role != Role.UPDATE:
                return form.save()
            with hold(*self.lock_keys, using=using):
                return form.save()

    def form_valid(self, form: ModelForm) -> HttpResponse:
        created = self.role != Role.UPDATE
        try:
            self.object = self.save_form(form)
        except Conflict as conflict:
            return self.conflict_response(conflict, form=form)
        verb = "created" if created else "saved"
        return self.success_response(f"{capfirst(self.verbose_name)} “{self.object}” {verb}.")

    def form_invalid(self, form: BaseForm) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=422)

    def confirm_delete(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """GET handler of delete; 409 when the object is busy."""
        self.object = self.get_object()
        if conflict := self.find_conflict(self.object):
            return self.conflict_response(conflict)
        return self.render_to_response(self.get_context_data())

    def delete_object(self, obj: models.Model) -> None:
        """Delete ``obj`` holding its locks, in one transaction (may raise Conflict)."""
        using = router.db_for_write(self.model, instance=obj)
        with transaction.atomic(using=using), hold(*self.lock_keys, using=using):
            obj.delete()

    def process_deletion(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """POST handler of delete."""
        self.object = self.get_object()
        if conflict := self.find_conflict(self.object):
            return self.conflict_response(conflict)
        try:
            self.delete_object(self.object)
        except Conflict as conflict:
            return self.conflict_response(conflict)
        except (ProtectedError, RestrictedError) as error:
            blockers = sorted({str(o) for o in error.args[1]})[:10] if len(error.args) > 1 else []
            context = self.get_context_data(delete_error=error.args[0], delete_blockers=blockers)
            return self.render_to_response(context, status=409)
        return self.success_response(
            f"{capfirst(self.verbose_name)} “{self.object_title}” deleted."
        )

    @property
    def verbose_name(self) -> str:
        return str(self.model._meta.verbose_name)

    def success_response(self, message: str) -> HttpResponse:
        """After a write: for htmx, 204 + events (refresh the table, close the modal)."""
        if self.wants_fragment:
            events = {CHANGED_EVENT: {"message": message}, CLOSE_MODAL_EVENT: {}}
            return hx_trigger(HttpResponse(status=204), events)
        return HttpResponseRedirect(self.get_success_url())

    def conflict_response(self, conflict: Conflict, **context: Any) -> HttpResponse:
        """409 with the conflict notice (and, for a form, the user's input)."""
        notice = conflicts.describe(conflict, self.request.user, refresh_url=self.request.path)
        return self.render_to_response(self.get_context_data(conflict=notice, **context), 409)

    # -- rendering -------------------------------------------------------------------

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            can=self.can,
            in_modal=self.wants_fragment,
            partials=Partials(self),
            list_view_url=Role.LIST.maybe_reverse(self),
        )
        if self.object is not None and self.object.pk is not None:
            context.setdefault("object_title", getattr(self, "object_title", str(self.object)))
            context["detail_view_url"] = Role.DETAIL.maybe_reverse(self, self.object)
            context["delete_view_url"] = Role.DELETE.maybe_reverse(self, self.object)
        return context

    def get_template_names(self) -> list[str]:
        """``<app>/<model><suffix>.html``, then ``powercrud/object<suffix>.html``."""
        if self.template_name is not None:
            return [self.template_name]
        if self.model is not None and self.template_name_suffix is not None:
            opts = self.model._meta
            return [
                f"{opts.app_label}/{opts.model_name}{self.template_name_suffix}.html",
                f"powercrud/object{self.template_name_suffix}.html",
            ]
        raise ImproperlyConfigured(
            f"{type(self).__name__} must define template_name, or model and "
            "template_name_suffix, or override get_template_names()."
        )

    def get_partial_template_names(self, name: str) -> list[str]:
        """``<app>/partials/<model>_<name>.html``, then ``powercrud/partials/<name>.html``."""
        opts = self.model._meta
        return [
            f"{opts.app_label}/partials/{opts.model_name}_{name}.html",
            f"powercrud/partials/{name}.html",
        ]

    def get_fragment_name(self) -> str | None:
        """The partial an htmx request for this role gets (None: the whole page)."""
        return FRAGMENTS.get(self.role)

    def render_to_response(self, context: dict[str, Any], status: int = 200) -> HttpResponse:
        name = self.get_fragment_name() if self.wants_fragment else None
        templates = self.get_partial_template_names(name) if name else self.get_template_names()
        return TemplateResponse(self.request, templates, context, status=status)


__all__ = ["Column", "PageLink", "PowerCRUDView", "Row"]
