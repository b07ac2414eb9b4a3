"""The broker's in-memory picture of who may connect: tenants, devices, certificates and
the API keys of service clients.

Loaded once at start and kept current from the change feed, so authenticating a connection
costs a dictionary lookup (by certificate fingerprint, or by API key prefix) and never a
database query.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devices.apikeys import hash_key, split_key
from devices.models import ApiKey, Device, DeviceGroup, Tenant
from pki.models import Certificate, CertificateStatus

from .tls import certificate_problem

# MQTT 5 CONNACK reason codes used here (mapped to 3.1.1 return codes by the engine).
CLIENT_IDENTIFIER_NOT_VALID = 0x85
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
BANNED = 0x8A
"""A revoked certificate: barred by an administrative action (MQTT 5 "Banned"), not a
malformed user name or password. 3.1.1 has no such code: it becomes 5, not authorized."""

# Plain strings: CertRecord.status holds the stored value, compared on every CONNECT.
REVOKED = str(CertificateStatus.REVOKED)
EXPIRED = str(CertificateStatus.EXPIRED)


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: int
    slug: str
    enabled: bool

    @property
    def mountpoint(self) -> str:
        return mountpoint_for(self.slug)


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    id: int
    tenant_id: int
    name: str
    enabled: bool
    groups: tuple[str, ...]
    """The device's group first, then its ancestors."""
    attributes: dict[str, Any] = field(compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class CertRecord:
    fingerprint: str
    serial: str
    tenant_id: int
    device_id: int | None
    status: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """What the broker keeps of an API key: never the key itself, only its SHA-256."""

    id: int
    prefix: str
    tenant_id: int
    name: str
    """The service id its clients have in ACL rules (subject kind "service")."""
    role: str
    key_hash: str
    expires_at: datetime | None
    revoked: bool

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class Refusal:
    reason_code: int
    why: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    tenant: TenantInfo
    device: DeviceIdentity
    certificate: CertRecord


@dataclass(frozen=True, slots=True)
class AuthenticatedService:
    tenant: TenantInfo
    key: ServiceKey


MOUNT_LEVELS = 1
"""Slugs cannot contain "/", "+", "#" or "$", so a mountpoint is always exactly one level."""


def mountpoint_for(slug: str) -> str:
    return f"{slug}/"


def fingerprint_of(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


class IdentityIndex:
    def __init__(self) -> None:
        self.tenants: dict[int, TenantInfo] = {}
        self.tenant_by_mountpoint: dict[str, TenantInfo] = {}
        self.devices: dict[int, DeviceIdentity] = {}
        self.device_by_name: dict[tuple[int, str], DeviceIdentity] = {}
        self.certs: dict[str, CertRecord] = {}
        self.api_keys: dict[str, ServiceKey] = {}
        """By public prefix (the MQTT user name of a service client)."""

    # Loading (database, called from a worker thread) --------------------------------------

    def load_all(self) -> None:
        for tenant in Tenant.objects.all():
            self._put_tenant(tenant)
        groups = {g.pk: g for g in DeviceGroup.objects.all()}
        for device in Device.objects.all():
            self._put_device(device, groups)
        for cert in Certificate.objects.all():
            self._put_cert(cert)
        # Revoked keys can never come back; expired ones are kept so a refusal says why.
        for api_key in ApiKey.objects.filter(revoked_at__isnull=True):
            self._put_api_key(api_key)

    def reload_tenant(self, tenant_id: int) -> TenantInfo | None:
        tenant = Tenant.objects.filter(pk=tenant_id).first()
        old = self.tenants.pop(tenant_id, None)
        if old is not None:
            self.tenant_by_mountpoint.pop(old.mountpoint, None)
        if tenant is None:
            return None
        return self._put_tenant(tenant)

    def reload_device(self, device_id: int) -> DeviceIdentity | None:
        old = self.devices.pop(device_id, None)
        if old is not None:
            self.device_by_name.pop((old.tenant_id, old.name), None)
        device = Device.objects.filter(pk=device_id).first()
        if device is None:
            return None
        return self._put_device(device, None)

    def reload_tenant_devices(self, tenant_id: int) -> None:
        """Group changes can alter every device's group chain; reload the tenant's devices."""
        groups = {g.pk: g for g in DeviceGroup.objects.filter(tenant_id=tenant_id)}
        for device in Device.objects.filter(tenant_id=tenant_id):
            old = self.devices.pop(device.pk, None)
            if old is not None:
                self.device_by_name.pop((old.tenant_id, old.name), None)
            self._put_device(device, groups)

    def reload_certificate(self, fingerprint: str) -> CertRecord | None:
        cert = Certificate.objects.filter(fingerprint=fingerprint).first()
        if cert is None:
            self.certs.pop(fingerprint, None)
            return None
        return self._put_cert(cert)

    def reload_api_key(self, key_id: int) -> ServiceKey | None:
        api_key = ApiKey.objects.filter(pk=key_id).first()
        return None if api_key is None else self._put_api_key(api_key)

    def forget_tenant_keys(self, tenant_id: int) -> None:
        for prefix in [p for p, key in self.api_keys.items() if key.tenant_id == tenant_id]:
            del self.api_keys[prefix]

    def _put_tenant(self, tenant: Tenant) -> TenantInfo:
        info = TenantInfo(tenant.pk, tenant.slug, tenant.enabled)
        self.tenants[info.id] = info
        self.tenant_by_mountpoint[info.mountpoint] = info
        return info

    def _put_device(self, device: Device, groups: dict[int, DeviceGroup] | None) -> DeviceIdentity:
        chain: list[str] = []
        group_id = device.group_id
        while group_id is not None and len(chain) < 64:
            group = groups.get(group_id) if groups is not None else DeviceGroup.objects.filter(pk=group_id).first()
            if group is None:
                break
            chain.append(group.name)
            group_id = group.parent_id
        identity = DeviceIdentity(device.pk, device.tenant_id, device.name, device.enabled, tuple(chain),
                                  dict(device.attributes or {}))
        self.devices[identity.id] = identity
        self.device_by_name[(identity.tenant_id, identity.name)] = identity
        return identity

    def _put_cert(self, cert: Certificate) -> CertRecord:
        record = CertRecord(cert.fingerprint, cert.serial, cert.tenant_id, cert.device_id, cert.status,
                            cert.not_before, cert.not_after)
        self.certs[record.fingerprint] = record
        return record

    def _put_api_key(self, api_key: ApiKey) -> ServiceKey:
        record = ServiceKey(api_key.pk, api_key.prefix, api_key.tenant_id, api_key.name, api_key.role,
                            api_key.key_hash, api_key.expires_at, api_key.revoked_at is not None)
        self.api_keys[record.prefix] = record
        return record

    # Decisions (event loop, memory only) ----------------------------------------------------

    def authenticate(self, leaf_der: bytes | None, client_id: str, username: str | None,
                     now: datetime | None = None) -> Authenticated | Refusal:
        if not leaf_der:
            return Refusal(NOT_AUTHORIZED, "no client certificate")
        # Before the registry: a certificate that is not a device certificate is refused for
        # what it is, whichever CA signed it and whether or not pki recorded it.
        problem = certificate_problem(leaf_der)
        if problem is not None:
            return Refusal(NOT_AUTHORIZED, problem)
        record = self.certs.get(fingerprint_of(leaf_der))
        if record is None:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "unknown certificate")
        if record.status == REVOKED:
            return Refusal(BANNED, "certificate revoked")
        now = now or datetime.now(UTC)
        if record.not_after <= now or record.status == EXPIRED:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "certificate expired")
        if record.not_before > now:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "certificate not yet valid")
        tenant = self.tenants.get(record.tenant_id)
        device = self.devices.get(record.device_id) if record.device_id is not None else None
        if tenant is None or device is None:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "certificate of a deleted device")
        if not tenant.enabled:
            return Refusal(NOT_AUTHORIZED, "tenant disabled")
        if not device.enabled:
            return Refusal(NOT_AUTHORIZED, "device disabled")
        if client_id != device.name:
            return Refusal(CLIENT_IDENTIFIER_NOT_VALID, "client id differs from the device name")
        if username and username != device.name:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "user name differs from the device name")
        return Authenticated(tenant, device, record)

    def authenticate_key(self, username: str | None, password: bytes | None, client_id: str,
                         now: datetime | None = None) -> AuthenticatedService | Refusal:
        """A service client: user name = the key's public prefix, password = the whole key."""
        if not password:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "no API key")
        try:
            key = password.decode("ascii")
        except UnicodeDecodeError:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "malformed API key")
        parts = split_key(key)
        if parts is None:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "malformed API key")
        prefix = parts[0]
        if username != prefix:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "user name differs from the API key prefix")
        record = self.api_keys.get(prefix)
        if record is None:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "unknown API key")
        if not hmac.compare_digest(record.key_hash, hash_key(key.strip())):
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "wrong API key")
        if record.revoked:
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "API key revoked")
        if record.expired(now or datetime.now(UTC)):
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "API key expired")
        tenant = self.tenants.get(record.tenant_id)
        if tenant is None or not tenant.enabled:
            # As on the REST API: a key of a disabled tenant is simply not a usable key.
            return Refusal(BAD_USER_NAME_OR_PASSWORD, "API key of a disabled tenant")
        if (tenant.id, client_id) in self.device_by_name:
            # Sessions are keyed by client id within the tenant: a service taking a device's
            # name would take over (and disconnect) that device's session.
            return Refusal(CLIENT_IDENTIFIER_NOT_VALID, "service client id is a device name")
        return AuthenticatedService(tenant, record)

    def usable_key(self, prefix: str, tenant_id: int, now: datetime | None = None) -> ServiceKey | None:
        """The key of a live service session if it may still act (for re-binding its ACLs)."""
        record = self.api_keys.get(prefix)
        tenant = self.tenants.get(tenant_id)
        if record is None or record.revoked or record.tenant_id != tenant_id or tenant is None:
            return None
        if not tenant.enabled or record.expired(now or datetime.now(UTC)):
            return None
        return record
