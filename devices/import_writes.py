"""The writes of a bulk import, many rows per statement.

`create_device` and `pki.issuance.issue_certificate` write each device and certificate with
its audit row and outbox row, a few statements apiece. For ten thousand devices those
round trips are most of the time, so an import writes a whole chunk at once: the same rows,
field for field (the same validation ran in `import_rows`, the same certificate profile comes
from `pki.issuance`), the same audit actions and change events, one NOTIFY per chunk. When a
chunk meets a conflict (another writer created one of its devices, or certified one of its
keys, a moment ago, or pki refuses a CSR's key) the caller redoes it row by row through those
two services, which report the row at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from django.db import connection

from pki.ca import active_issuing_ca
from pki.issuance import (
    CaSigner,
    IssuedCertificate,
    _claim_key,
    _validity_days,
    bundle_for,
    issue_certificate,
)
from pki.models import Certificate, CertifiedKey
from pki.x509util import fingerprint, pem, public_key_sha256, serial_hex, utc

from .audit import Actor
from .changes import NOTIFY_CHANNEL
from .import_rows import DeviceRow
from .models import AuditEvent, ChangeEvent, Device, Tenant

# Events ---------------------------------------------------------------------------------------


def audit_row(actor: Actor, action: str, target: Any, *, tenant: Tenant,
              after: dict[str, Any] | None = None) -> AuditEvent:
    """The row `devices.audit.record_audit` would write, unsaved."""
    return AuditEvent(
        tenant=tenant, actor_kind=actor.kind,
        actor_user=actor.user if actor.user is not None and actor.user.pk else None,
        actor_label=actor.label[:200], action=action, target_type=type(target).__name__.lower(),
        target_id=str(target.pk), target_repr=str(target)[:255], after=after,
    )


def change_row(kind: str, op: str, object_id: Any, *, tenant: Tenant, payload: dict[str, Any]) -> ChangeEvent:
    """The row `devices.changes.record_change` would write, unsaved."""
    return ChangeEvent(tenant=tenant, kind=kind, op=op, object_id=str(object_id), payload=payload)


def save_events(audits: list[AuditEvent], changes: list[ChangeEvent]) -> None:
    """Insert the rows inside the caller's transaction; one NOTIFY wakes the broker for all."""
    if not connection.in_atomic_block:
        raise RuntimeError("save_events() must be called inside transaction.atomic()")
    AuditEvent.objects.bulk_create(audits)
    saved = ChangeEvent.objects.bulk_create(changes)
    if saved and connection.vendor == "postgresql":
        # The broker reads every row after the last it saw, so one NOTIFY (sent on commit) is enough.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, str(saved[-1].pk or 0)])


# Devices --------------------------------------------------------------------------------------


def insert_devices(rows: list[DeviceRow], tenant: Tenant, actor: Actor) -> list[Device]:
    """bulk_create the checked devices with their `device.create` audit and outbox rows."""
    devices = Device.objects.bulk_create([row.device for row in rows])
    save_events(
        [audit_row(actor, "device.create", device, tenant=tenant, after=device.snapshot()) for device in devices],
        [change_row("device", "created", device.pk, tenant=tenant,
                    payload={"name": device.name, "enabled": device.enabled}) for device in devices],
    )
    return devices


# Certificates ---------------------------------------------------------------------------------


@dataclass(slots=True)
class PendingCertificate:
    """A certificate signed for a device not yet saved; written by `BatchIssuer.save`."""

    row: DeviceRow
    certificate: x509.Certificate
    public_key: CertificateIssuerPublicKeyTypes
    key_hash: str
    private_key: ec.EllipticCurvePrivateKey | None


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class BatchIssuer:
    """Signs an import's certificates with the tenant's active issuing CA, through pki's one
    certificate profile (`CaSigner`) with the CA key loaded once per job."""

    def __init__(self, tenant: Tenant, actor: Actor, days: int | None = None) -> None:
        self.tenant = tenant
        self.actor = actor
        self.days = _validity_days(days)
        self.ca = active_issuing_ca(tenant)
        self.signer = CaSigner(self.ca)

    def certificate_for(self, name: str, public_key: CertificateIssuerPublicKeyTypes,
                        device: Device | None = None) -> x509.Certificate:
        return self.signer.build(device or Device(tenant=self.tenant, name=name), public_key, self.days)

    def sign(self, rows: list[DeviceRow]) -> list[PendingCertificate]:
        """Generate keys (P-256) for rows without a CSR and sign every certificate: CPU work,
        done before the chunk's transaction opens so that it holds its locks briefly."""
        pending = []
        for row in rows:
            private_key = None
            public_key = row.csr_key
            if public_key is None:
                private_key = ec.generate_private_key(ec.SECP256R1())
                public_key = private_key.public_key()
            key_hash = public_key_sha256(public_key)
            certificate = self.certificate_for(row.device.name, public_key, row.device)
            pending.append(PendingCertificate(row, certificate, public_key, key_hash, private_key))
        return pending

    def save(self, pending: list[PendingCertificate]) -> list[IssuedCertificate]:
        """Claim the keys and store the certificates of devices just inserted, with their
        `certificate.issue` audit and outbox rows (inside the chunk's transaction)."""
        tenant, ca, label = self.tenant, self.ca, self.actor.label[:200]
        # One key, one device. A key generated here a moment ago is nobody's yet: its claims are
        # inserted together. A CSR's key goes through pki's own check (in use for another device,
        # revoked for key compromise, …); a refusal (PkiError) sends the chunk row by row, where
        # it is reported for its row.
        CertifiedKey.objects.bulk_create([
            CertifiedKey(public_key_sha256=item.key_hash, tenant=tenant, device_name=item.row.device.name)
            for item in pending if item.private_key is not None
        ])
        for item in pending:
            if item.private_key is None:
                _claim_key(item.row.device, item.key_hash)
        records = Certificate.objects.bulk_create([
            Certificate(
                tenant=tenant, device=item.row.device, device_name=item.row.device.name, issuer=ca,
                serial=serial_hex(item.certificate.serial_number), fingerprint=fingerprint(item.certificate),
                public_key_sha256=item.key_hash, subject=item.certificate.subject.rfc4514_string()[:255],
                not_before=utc(item.certificate.not_valid_before_utc),
                not_after=utc(item.certificate.not_valid_after_utc),
                issued_by=label, key_generated_by_server=item.private_key is not None,
                certificate_pem=pem(item.certificate),
            )
            for item in pending
        ])
        audits, changes = [], []
        for record in records:
            payload = {"serial": record.serial, "fingerprint": record.fingerprint, "device": record.device_name,
                       "tenant": tenant.slug, "not_after": record.not_after.isoformat(), "issuer_ca": ca.pk}
            audits.append(audit_row(self.actor, "certificate.issue", record, tenant=tenant, after=payload))
            changes.append(change_row("certificate", "issued", record.pk, tenant=tenant, payload=payload))
        save_events(audits, changes)
        return [
            bundle_for(record, private_key_pem=private_key_pem(item.private_key) if item.private_key else "")
            for record, item in zip(records, pending, strict=True)
        ]

    def issue_one(self, device: Device, item: PendingCertificate) -> IssuedCertificate:
        """The row-by-row way, through pki's own service (its claim check, its audit)."""
        record = issue_certificate(device, item.public_key, actor=self.actor, days=self.days,
                                   server_generated=item.private_key is not None)
        return bundle_for(record, private_key_pem=private_key_pem(item.private_key) if item.private_key else "")
