"""The one tenant-access helper of the API: who may act in which tenant, with which role.

A member acts with their membership's role, an API key with its own role in its own tenant,
platform staff with every right everywhere. A tenant the caller cannot see answers 404, so
its name does not leak; one they can see but lack the role for answers 403.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from rest_framework.request import Request

from devices.audit import Actor
from devices.models import ApiKey, Role, Tenant

from .errors import forbidden, not_found


def is_platform_staff(user: Any) -> bool:
    return bool(getattr(user, "is_active", False) and (user.is_superuser or user.is_staff))


def api_key_of(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def session_user(request: Request) -> User | None:
    """The signed-in Django user; None for an API key (its KeyUser) or nobody."""
    user = request.user
    return user if isinstance(user, User) and user.is_authenticated else None


def role_in(request: Request, tenant: Tenant) -> str | None:
    """The caller's role in `tenant`, or None when it is none of their business."""
    key = api_key_of(request)
    if key is not None:
        return key.role if key.tenant_id == tenant.pk else None
    if is_platform_staff(request.user):
        return Role.OWNER
    user = session_user(request)
    if user is None:
        return None
    return tenant.memberships.filter(user=user).values_list("role", flat=True).first()


def has_role(actual: str | None, wanted: str) -> bool:
    from devices.models import ROLE_RANK

    return actual is not None and ROLE_RANK[Role(actual)] >= ROLE_RANK[Role(wanted)]


def tenant_for(request: Request, slug: str, role: str = Role.VIEWER) -> Tenant:
    """The tenant named `slug` if the caller holds at least `role` in it."""
    tenant = Tenant.objects.filter(slug=slug).first()
    actual = role_in(request, tenant) if tenant is not None else None
    if tenant is None or actual is None:
        raise not_found(f"No tenant {slug!r}.", code="tenant_not_found")
    if not has_role(actual, role):
        raise forbidden(f"This needs the {role} role in tenant {slug!r}; you have {actual}.",
                        code="role_required")
    return tenant


def visible_tenants(request: Request) -> QuerySet[Tenant]:
    """The tenants the caller may read."""
    key = api_key_of(request)
    if key is not None:
        return Tenant.objects.filter(pk=key.tenant_id)
    if is_platform_staff(request.user):
        return Tenant.objects.all()
    user = session_user(request)
    if user is None:
        return Tenant.objects.none()
    return Tenant.objects.filter(memberships__user=user).distinct()


def actor_for(request: Request) -> Actor:
    """Who the audit trail names for this request: the user, or the API key by name."""
    key = api_key_of(request)
    if key is not None:
        return Actor.api_key(key.label)
    return Actor.for_user(request.user)
