"""Who a browser is on /mqtt, in which tenant and with which role, and whether that still holds.

Synchronous (database) code, run by the consumer through `database_sync_to_async`. The
tenant is the MQTT CONNECT user name: a slug the user is a member of (platform staff may
name any enabled tenant); an empty one picks the user's only tenant. The role is the
membership's; platform staff act as at least admin. The broker gets this as a signed
principal (broker/integration/signed_principals.py) and applies the tenant's ACLs to it.

A grant stays valid while the Django session that made it still exists for the same user
with the same auth hash (sign-out in any tab, a password change, session expiry), the user
is active, and the effective role in the tenant is unchanged (membership removed or changed,
tenant disabled or deleted). The consumer re-checks every couple of seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.utils.crypto import constant_time_compare

from broker.mqtt import ReasonCode
from devices.models import ROLE_RANK, Membership, Role, Tenant
from roost.api.access import is_platform_staff


@dataclass(frozen=True, slots=True)
class Grant:
    """What a browser connection acts as; fixed for its lifetime."""

    user_id: int
    username: str
    tenant_id: int
    tenant: str
    role: str
    session_key: str
    session_hash: str  # the session's stored auth hash when the grant was made
    user_hash: str  # the user's auth hash (password-derived) when the grant was made


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a browser may not (or may no longer) act: an MQTT 5 reason code and a label."""

    code: int
    reason: str


NO_SESSION = Refusal(ReasonCode.NOT_AUTHORIZED, "no session")
LOGGED_OUT = Refusal(ReasonCode.NOT_AUTHORIZED, "signed out")
PASSWORD_CHANGED = Refusal(ReasonCode.NOT_AUTHORIZED, "password changed")
DEACTIVATED = Refusal(ReasonCode.ADMINISTRATIVE_ACTION, "user deactivated")
ROLE_CHANGED = Refusal(ReasonCode.ADMINISTRATIVE_ACTION, "membership changed")
NOT_A_MEMBER = Refusal(ReasonCode.NOT_AUTHORIZED, "not a member of the tenant")
NAME_THE_TENANT = Refusal(ReasonCode.BAD_USER_NAME_OR_PASSWORD, "no tenant named")


def session_store(session_key: str) -> Any:
    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(session_key)


def effective_role(user: Any, tenant_id: int) -> str | None:
    """The user's role in an enabled tenant: the membership's, at least admin for staff."""
    role = (Membership.objects.filter(user=user, tenant_id=tenant_id, tenant__enabled=True)
            .values_list("role", flat=True).first())
    if is_platform_staff(user) and (role is None or ROLE_RANK[Role(role)] < ROLE_RANK[Role.ADMIN]):
        if role is None and not Tenant.objects.filter(pk=tenant_id, enabled=True).exists():
            return None
        role = Role.ADMIN
    return None if role is None else str(role)


def grant_for(user: Any, session_key: str | None, requested: str | None) -> Grant | Refusal:
    """The grant for a signed-in user asking for tenant `requested` (the CONNECT user name)."""
    if session_key is None or not getattr(user, "is_authenticated", False):
        return NO_SESSION
    user = get_user_model().objects.filter(pk=user.pk, is_active=True).first()
    session = session_store(session_key)
    if user is None or str(session.get(SESSION_KEY)) != str(user.pk):
        return NO_SESSION
    if requested:
        tenant = Tenant.objects.filter(slug=requested).first()
    else:
        # An empty user name means "my only tenant"; staff without a membership must name one.
        slugs = list(Tenant.objects.filter(memberships__user=user).values_list("slug", flat=True)[:2])
        if len(slugs) != 1:
            return NAME_THE_TENANT
        tenant = Tenant.objects.get(slug=slugs[0])
    role = effective_role(user, tenant.pk) if tenant is not None else None
    if tenant is None or role is None:
        # One answer for "no such tenant", "not yours" and "disabled": names do not leak.
        return NOT_A_MEMBER
    return Grant(
        user_id=user.pk, username=user.get_username(), tenant_id=tenant.pk, tenant=tenant.slug,
        role=role, session_key=session_key, session_hash=str(session.get(HASH_SESSION_KEY, "")),
        user_hash=user.get_session_auth_hash(),
    )


def still_valid(grant: Grant) -> Refusal | None:
    """None while the grant holds; otherwise why it ended."""
    session = session_store(grant.session_key)
    if str(session.get(SESSION_KEY)) != str(grant.user_id):
        return LOGGED_OUT  # signed out, expired, deleted, or replaced by another user's sign-in
    if not constant_time_compare(str(session.get(HASH_SESSION_KEY, "")), grant.session_hash):
        return PASSWORD_CHANGED  # this session's hash was updated after a password change
    user = get_user_model().objects.filter(pk=grant.user_id).first()
    if user is None or not user.is_active:
        return DEACTIVATED
    if not constant_time_compare(user.get_session_auth_hash(), grant.user_hash):
        return PASSWORD_CHANGED
    if effective_role(user, grant.tenant_id) != grant.role:
        return ROLE_CHANGED
    return None
