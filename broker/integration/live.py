"""Live effect of registry changes: what the change feed reloads and what the broker does.

`prepare` runs in the change-feed thread and does all the database reading; `apply` runs
on the event loop and only swaps in-memory state and acts on connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from acl.loading import TenantRules, load_tenant_rules
from broker.engine.interfaces import Principal
from broker.engine.operations import Admin
from broker.mqtt.topics import has_wildcard
from devices.models import ChangeEvent, Device, DeviceGroup, Tenant
from pki.broker import client_crl_bundle, ensure_broker_server_certificate, trusted_client_ca_bundle

from .authority import PlatformAuthority
from .identities import (
    CertRecord,
    DeviceIdentity,
    IdentityIndex,
    ServiceKey,
    TenantInfo,
    mountpoint_for,
)
from .tls import TlsReloader

log = logging.getLogger("roost.broker.live")


@dataclass
class Changes:
    """Fresh copies of everything a batch of outbox rows touched (None: deleted)."""

    tenants: dict[int, TenantInfo | None] = field(default_factory=dict)
    devices: dict[int, DeviceIdentity | None] = field(default_factory=dict)
    certs: dict[str, CertRecord | None] = field(default_factory=dict)
    rules: dict[str, TenantRules | None] = field(default_factory=dict)
    api_keys: dict[str, ServiceKey | None] = field(default_factory=dict)
    """By prefix; None: the key row is gone."""
    retained_clears: list[tuple[str, str]] = field(default_factory=list)
    """(tenant slug, topic filter): one topic, or a subtree when the filter has wildcards."""
    kicks: list[int] = field(default_factory=list)
    """Devices to disconnect now (an operator's kick)."""
    trust_bundle: str | None = None
    """The new client CA bundle when a CA was created or rotated."""
    crl_bundle: str | None = None
    """Every CA's current CRL, when one was published (a revocation, a re-signing, a new CA)."""
    server_cert: tuple[str, str] | None = None
    """(chain path, key path) when the broker's own certificate was renewed."""


def prepare(events: list[ChangeEvent]) -> Changes:
    """Reload from the database whatever the events name (change-feed thread)."""
    changes = Changes()
    scratch = IdentityIndex()
    regroup: set[int] = set()
    for event in events:
        kind, payload = event.kind, event.payload or {}
        if kind == "tenant":
            tenant_id = int(event.object_id)
            changes.tenants[tenant_id] = scratch.reload_tenant(tenant_id)
            info = changes.tenants[tenant_id]
            slug = info.slug if info else payload.get("slug")
            if slug:
                changes.rules[slug] = _rules_or_none(slug)
        elif kind == "device" and event.op == "kick":
            changes.kicks.append(int(event.object_id))
        elif kind == "device":
            device_id = int(event.object_id)
            changes.devices[device_id] = scratch.reload_device(device_id)
        elif kind == "group" and event.tenant_id is not None:
            regroup.add(event.tenant_id)
        elif kind == "certificate":
            fingerprint = payload.get("fingerprint")
            if fingerprint:
                changes.certs[fingerprint] = scratch.reload_certificate(fingerprint)
        elif kind == "api_key":
            record = scratch.reload_api_key(int(event.object_id))
            prefix = record.prefix if record is not None else payload.get("prefix")
            if isinstance(prefix, str) and prefix:
                changes.api_keys[prefix] = record
        elif kind == "acl_rule":
            slug = payload.get("tenant") or _slug_of(event.tenant_id)
            if slug:
                changes.rules[slug] = _rules_or_none(slug)
        elif kind == "retained" and event.op == "clear":
            slug = payload.get("tenant") or _slug_of(event.tenant_id)
            topic = payload.get("filter") or payload.get("topic")
            if slug and isinstance(topic, str) and topic:
                changes.retained_clears.append((slug, topic))
        elif kind == "certificate_authority":
            changes.trust_bundle = trusted_client_ca_bundle()
            changes.crl_bundle = client_crl_bundle()  # the new CA's first CRL with it
        elif kind == "crl":
            changes.crl_bundle = client_crl_bundle()
        elif kind == "broker_certificate":
            files = ensure_broker_server_certificate()
            changes.server_cert = (str(files.chain_path), str(files.key_path))
    for tenant_id in regroup:
        groups = {g.pk: g for g in DeviceGroup.objects.filter(tenant_id=tenant_id)}
        for device in Device.objects.filter(tenant_id=tenant_id):
            changes.devices[device.pk] = scratch._put_device(device, groups)
    return changes


def _slug_of(tenant_id: int | None) -> str | None:
    if tenant_id is None:
        return None
    slug: str | None = Tenant.objects.filter(pk=tenant_id).values_list("slug", flat=True).first()
    return slug


def _in_mountpoint(mountpoint: str) -> Callable[[Principal], bool]:
    return lambda principal: principal.mountpoint == mountpoint


def _with_attribute(name: str, value: object) -> Callable[[Principal], bool]:
    return lambda principal: principal.attributes.get(name) == value


def _rules_or_none(slug: str) -> TenantRules | None:
    try:
        return load_tenant_rules(slug)
    except Tenant.DoesNotExist:
        return None


class LiveEffects:
    """Applies prepared changes on the event loop: swap state, kick, re-check subscriptions."""

    def __init__(
        self,
        identities: IdentityIndex,
        authority: PlatformAuthority,
        admin: Admin,
        *,
        retained_cleared: Callable[[int, str], None],
        tls: TlsReloader | None = None,
    ) -> None:
        self.identities = identities
        self.authority = authority
        self.admin = admin
        self.retained_cleared = retained_cleared
        self.tls = tls

    def _forget_tenant(self, tenant: TenantInfo) -> None:
        """A deleted tenant: its sessions, retained messages and identities go, so a tenant
        created later with the same slug starts empty."""
        ids = self.identities
        for device_id in [d for d, device in ids.devices.items() if device.tenant_id == tenant.id]:
            device = ids.devices.pop(device_id)
            ids.device_by_name.pop((device.tenant_id, device.name), None)
        for fingerprint in [f for f, cert in ids.certs.items() if cert.tenant_id == tenant.id]:
            del ids.certs[fingerprint]
        ids.forget_tenant_keys(tenant.id)
        sessions, retained = self.admin.forget_mountpoint(tenant.mountpoint)
        log.info("tenant %s deleted: %d session(s) and %d retained message(s) forgotten",
                 tenant.slug, sessions, retained)

    def apply(self, changes: Changes) -> None:
        ids = self.identities
        kicked = 0
        for tenant_id, tenant in changes.tenants.items():
            old = ids.tenants.pop(tenant_id, None)
            if old is not None:
                ids.tenant_by_mountpoint.pop(old.mountpoint, None)
            if tenant is not None:
                ids.tenants[tenant_id] = tenant
                ids.tenant_by_mountpoint[tenant.mountpoint] = tenant
            gone = tenant or old
            if gone is not None and (tenant is None or not tenant.enabled):
                kicked += self.admin.kick_where(_in_mountpoint(gone.mountpoint))
            if tenant is None and old is not None:
                self._forget_tenant(old)
        for device_id, device in changes.devices.items():
            old_device = ids.devices.pop(device_id, None)
            if old_device is not None:
                ids.device_by_name.pop((old_device.tenant_id, old_device.name), None)
            if device is not None:
                ids.devices[device_id] = device
                ids.device_by_name[(device.tenant_id, device.name)] = device
            if device is None or not device.enabled:
                kicked += self.admin.kick_where(_with_attribute("device_id", device_id))
        for fingerprint, cert in changes.certs.items():
            if cert is None:
                ids.certs.pop(fingerprint, None)
            else:
                ids.certs[fingerprint] = cert
            if cert is None or cert.status != "active":
                kicked += self.admin.kick_where(_with_attribute("fingerprint", fingerprint))
        now = datetime.now(UTC)
        for prefix, key in changes.api_keys.items():
            if key is None:
                ids.api_keys.pop(prefix, None)
            else:
                ids.api_keys[prefix] = key
            if key is None or key.revoked or key.expired(now):
                kicked += self.admin.kick_where(_with_attribute("api_key_prefix", prefix))
            # Its sessions (connected or kept) follow the key: a new name brings the rules of
            # that service, a dead key loses every subscription and delivery.
            self._rebind_service_sessions({prefix})
        # Rules: new decisions from the next publish on; subscriptions re-checked now.
        touched = set(changes.rules)
        for slug, rules in changes.rules.items():
            self.authority.replace_rules(slug, rules)
        # Device changes (attributes, group) change what variables expand to.
        for device in changes.devices.values():
            if device is not None:
                tenant = ids.tenants.get(device.tenant_id)
                if tenant is not None:
                    touched.add(tenant.slug)
        for slug in touched:
            mountpoint = mountpoint_for(slug)
            for session in list(self.admin.broker.sessions.values()):
                if session.mountpoint == mountpoint:
                    self.authority.rebind(session.principal)
            dropped = self.admin.recheck_subscriptions(mountpoint=mountpoint)
            if dropped:
                log.info("ACL change in %s dropped %d live subscription(s)", slug, dropped)
        for device_id in changes.kicks:
            kicked += self.admin.kick_where(_with_attribute("device_id", device_id))
        for slug, topic_filter in changes.retained_clears:
            mountpoint = mountpoint_for(slug)
            if has_wildcard(topic_filter):
                topics = [topic for topic, _ in self.admin.retained(topic_filter, mountpoint=mountpoint)]
            else:
                topics = [topic_filter]
            tenant = ids.tenant_by_mountpoint.get(mountpoint)
            for topic in topics:
                self.admin.clear_retained(topic, mountpoint=mountpoint)
                if tenant is not None:
                    self.retained_cleared(tenant.id, topic)
        if self.tls is not None:
            if changes.trust_bundle is not None:
                self.tls.add_trust(changes.trust_bundle)
            if changes.crl_bundle is not None:
                self.tls.add_crls(changes.crl_bundle)
            if changes.server_cert is not None:
                self.tls.replace_certificate(*changes.server_cert)
        if kicked:
            log.info("disconnected %d client(s) after registry changes", kicked)


    def _rebind_service_sessions(self, prefixes: set[str]) -> None:
        for session in list(self.admin.broker.sessions.values()):
            if session.principal.attributes.get("api_key_prefix") in prefixes:
                self.authority.rebind(session.principal)
                self.admin.recheck_subscriptions(client_id=session.client_id, mountpoint=session.mountpoint)

    def expire_api_keys(self, since: datetime, now: datetime) -> int:
        """Disconnect the service clients of keys that expired in (since, now].

        A key already expired at connect time was refused then, so only this window can
        hold keys with live clients; the scan is over the keys, not the sessions.
        """
        due = {prefix for prefix, key in self.identities.api_keys.items()
               if key.expires_at is not None and since < key.expires_at <= now}
        if not due:
            return 0
        kicked = self.admin.kick_where(lambda principal: principal.attributes.get("api_key_prefix") in due)
        self._rebind_service_sessions(due)
        if kicked:
            log.info("disconnected %d service client(s) whose API key expired", kicked)
        return kicked

    async def watch_key_expiry(self, interval: float = 1.0) -> None:
        """Run `expire_api_keys` every `interval` seconds, for as long as the broker runs."""
        since = datetime.now(UTC)
        while True:
            await asyncio.sleep(interval)
            now = datetime.now(UTC)
            try:
                self.expire_api_keys(since, now)
            except Exception:
                log.exception("checking API key expiry failed")
            since = now
