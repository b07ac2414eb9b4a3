"""Fleet provisioning by claim: a tenant's token lets a device register itself with its own CSR."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from devices import services as device_services
from devices.audit import Actor, record_audit
from devices.models import DeviceGroup, Tenant
from devices.validators import DEVICE_NAME_RULE, is_valid_device_name

from .csr import load_csr
from .errors import PkiError, bad_request, conflict, forbidden, not_found
from .issuance import IssuedCertificate, bundle_for, issue_certificate
from .models import EnrollmentToken

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "roost_enr_"  # noqa: S105 - a recognisable prefix, not a secret
MAX_TOKEN_LIFETIME = timedelta(days=3650)
_DURATION = re.compile(r"(\d+)\s*([smhdw])", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """'90m', '24h', '7d', '2w' or a combination such as '1d12h'."""
    value = text.strip().lower()
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.replace(" ", ""):
        raise bad_request(f"{text!r} is not a duration; use a number with s, m, h, d or w (e.g. 24h, 7d).",
                          code="invalid_duration")
    total = timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    if total <= timedelta(0) or total > MAX_TOKEN_LIFETIME:
        raise bad_request("A token lifetime must be more than zero and at most 10 years.", code="invalid_duration")
    return total


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: EnrollmentToken
    secret: str  # shown once; only its SHA-256 is stored


def create_token(tenant: Tenant, *, uses: int = 1, expires_in: timedelta = timedelta(days=1),
                 group: DeviceGroup | None = None, attributes: dict[str, Any] | None = None, label: str = "",
                 actor: Actor | None = None) -> NewToken:
    actor = actor or Actor.system()
    if uses < 1:
        raise bad_request("A token must allow at least one use.", code="invalid_uses")
    if group is not None and group.tenant_id != tenant.pk:
        raise bad_request("The group belongs to another tenant.", code="invalid_group")
    if attributes is not None and not isinstance(attributes, dict):
        raise bad_request("The attribute template must be a JSON object.", code="invalid_attributes")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = EnrollmentToken.objects.create(
            tenant=tenant, label=label[:200], token_hash=hash_token(secret), prefix=secret[:16],
            max_uses=uses, expires_at=timezone.now() + expires_in, group=group,
            attribute_template=dict(attributes or {}), created_by=actor.label[:200],
        )
        record_audit(actor, "enrollment_token.create", token, tenant=tenant, after={
            "prefix": token.prefix, "max_uses": uses, "expires_at": token.expires_at.isoformat(),
            "group": group.name if group else None, "label": token.label})
    return NewToken(token, secret)


def find_token(tenant: Tenant, prefix: str) -> EnrollmentToken:
    """A tenant's token by the public prefix it was shown with (`roost_enr_` and six characters)."""
    matches = list(EnrollmentToken.objects.select_related("tenant", "group")
                   .filter(tenant=tenant, prefix=prefix)[:2])
    if not matches:
        raise not_found(f"No enrollment token {prefix!r} in tenant {tenant.slug!r}.", code="token_not_found")
    if len(matches) > 1:
        # Six random characters make this rare, but the prefix is not a unique column.
        raise conflict(f"Several tokens of tenant {tenant.slug!r} start with {prefix!r}; revoke them in the admin.",
                       code="ambiguous_token")
    return matches[0]


def revoke_token(token: EnrollmentToken, *, actor: Actor | None = None) -> EnrollmentToken:
    """Disable a token for good: the next enrollment with it is refused. Devices it enrolled stay."""
    actor = actor or Actor.system()
    with transaction.atomic():
        # Conditional update: of two concurrent revocations one wins and the other conflicts.
        if not EnrollmentToken.objects.filter(pk=token.pk, enabled=True).update(enabled=False):
            raise conflict(f"The enrollment token {token.prefix} is already revoked.", code="already_revoked")
        token.refresh_from_db()
        record_audit(actor, "enrollment_token.revoke", token, tenant=token.tenant, before={"enabled": True},
                     after={"prefix": token.prefix, "enabled": False, "uses": token.uses,
                            "max_uses": token.max_uses})
    return token


def _claim(token: EnrollmentToken) -> None:
    """Take one use of the token, or refuse. The conditional UPDATE is the only arbiter under concurrency."""
    now = timezone.now()
    claimed = EnrollmentToken.objects.filter(
        pk=token.pk, enabled=True, uses__lt=F("max_uses"), expires_at__gt=now,
    ).update(uses=F("uses") + 1)
    if claimed != 1:
        token.refresh_from_db()
        if not token.enabled:
            raise forbidden("This enrollment token has been disabled.", code="token_disabled")
        if token.expires_at <= now:
            raise forbidden("This enrollment token has expired.", code="token_expired")
        raise forbidden("This enrollment token has been used up.", code="token_used_up")


def enroll(secret: str, name: str, csr_data: bytes | str, *, source: str = "") -> IssuedCertificate:
    """Create the device in the token's tenant and group and certify the CSR's key, all or nothing."""
    if not isinstance(secret, str) or not secret:
        raise forbidden("A valid enrollment token is required.", code="invalid_token")
    token = EnrollmentToken.objects.select_related("tenant", "group").filter(token_hash=hash_token(secret)).first()
    if token is None:
        raise forbidden("A valid enrollment token is required.", code="invalid_token")
    actor = Actor.api_key(f"enrollment-token:{token.prefix}")
    try:
        if not isinstance(name, str) or not is_valid_device_name(name):
            raise bad_request(f"Invalid device name {name!r}: use {DEVICE_NAME_RULE}.", code="invalid_device_name")
        if not token.tenant.enabled:
            raise forbidden("This tenant is disabled; enrollment is closed.", code="tenant_disabled")
        # Parsed before the transaction: a bad CSR costs no token use and no lock.
        csr = load_csr(csr_data)
        with transaction.atomic():
            _claim(token)
            try:
                device = device_services.create_device(
                    token.tenant, name, group=token.group, attributes=dict(token.attribute_template),
                    actor=actor)
            except ValidationError as exc:
                if "already exists" in " ".join(exc.messages):
                    raise conflict(f"A device named {name!r} already exists in this tenant.",
                                   code="device_exists") from None
                raise bad_request(" ".join(exc.messages), code="invalid_device") from None
            record = issue_certificate(device, csr.public_key(), actor=actor)
            record_audit(actor, "enrollment.use", token, tenant=token.tenant, after={
                "device": name, "serial": record.serial, "source": source[:100], "use": token.uses + 1})
    except PkiError as exc:
        _audit_refusal(token, actor, name, source, exc)
        raise
    return bundle_for(record)


def _audit_refusal(token: EnrollmentToken, actor: Actor, name: object, source: str, exc: PkiError) -> None:
    # The enrollment rolled back; the refusal is recorded on its own so that abuse shows in the trail.
    with transaction.atomic():
        record_audit(actor, "enrollment.refuse", token, tenant=token.tenant, after={
            "device": str(name)[:128], "reason": exc.code, "source": source[:100]})
