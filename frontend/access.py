"""The portal's one access rule: who may see which tenant, and do what in it.

A member acts with the role of their membership; platform staff (is_staff or is_superuser)
see every tenant with every right. A tenant the user cannot see answers 404, so its name
does not leak; one they can see with too low a role answers 403; an anonymous visitor is
sent to sign in. Roles and their order are the registry's (Membership.has_role, devices.models.ROLE_RANK).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase

from devices.models import Membership, Role, Tenant
from roost.api.access import is_platform_staff

View = Callable[..., HttpResponseBase]


@dataclass
class PortalAccess:
    """What a portal page knows about the signed-in user in the tenant it acts on."""

    tenant: Tenant
    role: str  # the effective role: the membership's, or owner for platform staff
    membership: Membership | None
    staff: bool
    tenants: list[Tenant] = field(default_factory=list)

    def can(self, role: str) -> bool:
        return self.staff or (self.membership is not None and self.membership.has_role(role))

    @property
    def can_operate(self) -> bool:
        return self.can(Role.OPERATOR)

    @property
    def can_admin(self) -> bool:
        return self.can(Role.ADMIN)

    @property
    def role_label(self) -> str:
        if self.membership is not None and self.staff:
            return f"{self.membership.role} (platform staff)"
        if self.membership is not None:
            return str(self.membership.role)
        return "platform staff"


def visible_tenants(user: Any) -> list[Tenant]:
    """The tenants a user may open in the portal, for the switcher and the home page."""
    if is_platform_staff(user):
        return list(Tenant.objects.order_by("slug"))
    return list(Tenant.objects.filter(memberships__user=user).order_by("slug").distinct())


def tenant_for(request: HttpRequest, slug: str, role: str = Role.VIEWER, *, hide: bool = False) -> Tenant:
    """The tenant `slug` if the signed-in user holds at least `role` in it.

    404 when they cannot see it at all; 403 when their role is too low (404 with `hide`).
    Sets `request.portal` (a PortalAccess) for the page's layout.
    """
    user = request.user
    if not user.is_authenticated:
        raise PermissionDenied("Sign in first.")
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise Http404("No such tenant")
    staff = is_platform_staff(user)
    membership = Membership.objects.filter(user=user, tenant=tenant).first()
    if membership is None and not staff:
        raise Http404("No such tenant")
    access = PortalAccess(tenant=tenant, membership=membership, staff=staff,
                          role=membership.role if membership is not None and not staff else Role.OWNER)
    if not access.can(role):
        if hide:
            raise Http404("No such tenant")
        raise PermissionDenied(f"This needs the {role} role in {tenant.slug}; you are {access.role_label}.")
    access.tenants = visible_tenants(user)
    request.portal = access  # type: ignore[attr-defined]  # ours, read by portal() and the templates
    return tenant


def tenant_view(role: str = Role.VIEWER, *, post_role: str | None = None, hide: bool = False) -> Callable[[View], View]:
    """Decorate a view taking (request, tenant, ...) from a URL with `<slug:slug>`.

    `role` is needed to GET the page, `post_role` (default: `role`) to submit to it. An
    anonymous visitor is sent to the sign-in page and brought back afterwards.
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            needed = (post_role or role) if request.method not in ("GET", "HEAD", "OPTIONS") else role
            tenant = tenant_for(request, slug, needed, hide=hide)
            return view(request, tenant, *args, **kwargs)

        return wrapper

    return decorate


def portal(request: HttpRequest) -> PortalAccess:
    """The PortalAccess that tenant_for() attached to this request."""
    access = getattr(request, "portal", None)
    if not isinstance(access, PortalAccess):
        raise RuntimeError("portal() needs a request that tenant_for() has seen")
    return access
