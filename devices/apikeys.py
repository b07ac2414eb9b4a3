"""API keys: creation (the secret shown once), revocation, and checking a presented key.

The secret is 256 random bits, so a plain SHA-256 of the whole key is a safe thing to store
(no dictionary to attack) and cheap enough to check on every request. Lookup goes by the
public prefix; the hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .audit import Actor, record_audit
from .changes import record_change
from .models import ApiKey, ApiKeyRole, Tenant

KEY_PREFIX = "rk_"
_KEY = re.compile(r"(rk_[0-9a-f]{12})_([A-Za-z0-9_-]{43})", re.ASCII)
MAX_EXPIRY_DAYS = 3650
# last_used_* is written at most this often per key, so a busy script costs no write per request.
LAST_USED_RESOLUTION = timedelta(seconds=30)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    key: str  # shown once; only its hash is stored


def split_key(key: str) -> tuple[str, str] | None:
    """(public prefix, secret) of a well-formed key, else None."""
    match = _KEY.fullmatch(key.strip())
    return (match.group(1), match.group(2)) if match else None


def create_api_key(tenant: Tenant, *, role: str, name: str = "", expires_days: int | None = None,
                   actor: Actor | None = None) -> NewApiKey:
    actor = actor or Actor.system()
    errors: dict[str, str] = {}
    if role not in ApiKeyRole.values:
        errors["role"] = f"Unknown role {role!r}; use one of {', '.join(ApiKeyRole.values)}."
    name = (name or "").strip()
    if len(name) > 100:
        errors["name"] = "A key name has at most 100 characters."
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        errors["name"] = "A key name cannot contain control characters."
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        errors["expires_days"] = f"The expiry must be between 1 and {MAX_EXPIRY_DAYS} days."
    if errors:
        raise ValidationError(errors)
    prefix = KEY_PREFIX + secrets.token_hex(6)
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            tenant=tenant, name=name or prefix, role=role, prefix=prefix, key_hash=hash_key(key),
            created_by=actor.label[:200], expires_at=expires_at,
        )
        record_audit(actor, "api_key.create", api_key, tenant=tenant, after=api_key.snapshot())
        record_change("api_key", "created", api_key.pk, tenant=tenant, payload={"prefix": prefix})
    return NewApiKey(api_key, key)


def revoke_api_key(api_key: ApiKey, *, actor: Actor | None = None) -> ApiKey:
    """Revoke now; the next request with it is refused and its MQTT sessions end."""
    actor = actor or Actor.system()
    with transaction.atomic():
        api_key = ApiKey.objects.select_for_update().select_related("tenant").get(pk=api_key.pk)
        if api_key.revoked_at is not None:
            raise ValidationError({"api_key": f"The key {api_key.prefix} is already revoked."})
        before = api_key.snapshot()
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        record_audit(actor, "api_key.revoke", api_key, tenant=api_key.tenant, before=before,
                     after=api_key.snapshot())
        record_change("api_key", "revoked", api_key.pk, tenant=api_key.tenant,
                      payload={"prefix": api_key.prefix})
    return api_key


def check_key(key: str) -> ApiKey | None:
    """The usable key row this secret belongs to (tenant enabled, not revoked nor expired)."""
    parts = split_key(key)
    if parts is None:
        return None
    api_key = ApiKey.objects.select_related("tenant").filter(prefix=parts[0]).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, hash_key(key.strip())):
        return None
    if not api_key.is_usable() or not api_key.tenant.enabled:
        return None
    return api_key


def note_use(api_key: ApiKey, address: str | None) -> None:
    """Record when and from where a key was last used, at most every LAST_USED_RESOLUTION."""
    now = timezone.now()
    if (api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION
            and api_key.last_used_ip == address):
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now, last_used_ip=address or None)
    api_key.last_used_at, api_key.last_used_ip = now, address


def key_actor(api_key: ApiKey) -> Actor:
    return Actor.api_key(api_key.label)


__all__: list[Any] = ["NewApiKey", "check_key", "create_api_key", "hash_key", "key_actor", "note_use",
                      "revoke_api_key", "split_key"]
