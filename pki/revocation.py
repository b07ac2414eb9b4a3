"""Revocation (RFC 5280 reasons), one CRL per CA with a stored monotonic CRL number, expiry housekeeping."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from devices.audit import Actor, record_audit
from devices.changes import record_change
from devices.models import Tenant

from . import keystore
from .ca import create_issuing_ca
from .errors import bad_request, conflict, not_found
from .models import (
    CaKind,
    Certificate,
    CertificateAuthority,
    CertificateStatus,
    CompromisedKey,
    RevocationReason,
)
from .x509util import issuer_public_key, load_pem, normalize_serial, signature_hash_for

logger = logging.getLogger(__name__)

_REASON_FLAGS = {
    RevocationReason.UNSPECIFIED: x509.ReasonFlags.unspecified,
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
    RevocationReason.AA_COMPROMISE: x509.ReasonFlags.aa_compromise,
}


def _squash(text: str) -> str:
    return text.replace("_", "").replace("-", "").replace(" ", "").lower()


def parse_reason(text: str) -> str:
    """An RFC 5280 reason name in any case, with or without separators (key_compromise, keyCompromise)."""
    wanted = _squash(text or "unspecified")
    for reason in RevocationReason:
        if _squash(reason.value) == wanted:
            return reason.value
    choices = ", ".join(r.value for r in RevocationReason)
    raise bad_request(f"Unknown revocation reason {text!r}; use one of {choices}.", code="invalid_reason")


def reason_flag(reason: str) -> x509.ReasonFlags:
    return _REASON_FLAGS[RevocationReason(reason)]


def find_certificate(serial: str, *, tenant: Tenant | None = None) -> Certificate:
    """A certificate by serial as openssl prints it; limited to `tenant` when one is given."""
    value = normalize_serial(serial)
    if not value:
        raise bad_request(f"{serial!r} is not a hexadecimal certificate serial.", code="invalid_serial")
    qs = Certificate.objects.select_related("tenant", "issuer", "device")
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    cert = qs.filter(serial=value).first()
    if cert is None:
        raise not_found(f"No certificate with serial {serial}" + (f" in tenant {tenant.slug!r}." if tenant else "."),
                        code="certificate_not_found")
    return cert


def revoke_certificate(cert: Certificate, reason: str = RevocationReason.UNSPECIFIED, *,
                       actor: Actor | None = None) -> Certificate:
    """Revoke, audit, announce to the broker (op="revoked") and publish a fresh CRL, atomically."""
    actor = actor or Actor.system()
    reason = parse_reason(reason)
    with transaction.atomic():
        cert = Certificate.objects.select_for_update().select_related("tenant", "issuer").get(pk=cert.pk)
        if cert.status == CertificateStatus.REVOKED:
            raise conflict(f"Certificate {cert.serial} is already revoked ({cert.revocation_reason}).",
                           code="already_revoked")
        _mark_revoked(cert, reason, actor)
        issuers = {cert.issuer_id: cert.issuer}
        if reason == RevocationReason.KEY_COMPROMISE:
            for other in _compromise_key(cert):
                _mark_revoked(other, reason, actor)
                issuers[other.issuer_id] = other.issuer
        for issuer in issuers.values():
            publish_crl(issuer)
    logger.info("revoked certificate %s of %s/%s (%s)", cert.serial, cert.tenant.slug, cert.device_name, reason)
    return cert


def _mark_revoked(cert: Certificate, reason: str, actor: Actor) -> None:
    before = {"status": cert.status}
    cert.status = CertificateStatus.REVOKED
    cert.revocation_reason = reason
    cert.revoked_at = timezone.now().replace(microsecond=0)
    cert.save(update_fields=["status", "revocation_reason", "revoked_at"])
    payload = {"serial": cert.serial, "fingerprint": cert.fingerprint, "device": cert.device_name,
               "tenant": cert.tenant.slug, "reason": reason}
    record_audit(actor, "certificate.revoke", cert, tenant=cert.tenant, before=before,
                 after={**payload, "status": cert.status})
    record_change("certificate", "revoked", cert.pk, tenant=cert.tenant, payload=payload)


def _compromise_key(cert: Certificate) -> list[Certificate]:
    """Mark the certificate's key compromised for good (issuance refuses it from now on) and
    return the other certificates of that key still in force: they fall with it."""
    CompromisedKey.objects.get_or_create(
        public_key_sha256=cert.public_key_sha256,
        defaults={"serial": cert.serial, "tenant_slug": cert.tenant.slug, "device_name": cert.device_name})
    return list(Certificate.objects.select_for_update().select_related("tenant", "issuer")
                .filter(public_key_sha256=cert.public_key_sha256)
                .exclude(pk=cert.pk).exclude(status=CertificateStatus.REVOKED))


def _revoked_entries(ca: CertificateAuthority, now: datetime) -> list[x509.RevokedCertificate]:
    entries = []
    # Entries are dropped once the certificate has expired (RFC 5280 5.1.2.6 allows it).
    revoked = Certificate.objects.filter(issuer=ca, status=CertificateStatus.REVOKED, not_after__gt=now)
    for cert in revoked.order_by("revoked_at", "pk").iterator():
        builder = (x509.RevokedCertificateBuilder()
                   .serial_number(int(cert.serial, 16))
                   .revocation_date(cert.revoked_at or now))
        # RFC 5280 5.3.1: the reason code extension should be absent rather than "unspecified".
        if cert.revocation_reason and cert.revocation_reason != RevocationReason.UNSPECIFIED:
            builder = builder.add_extension(x509.CRLReason(reason_flag(cert.revocation_reason)), critical=False)
        entries.append(builder.build())
    return entries


def crl_lifetime() -> timedelta:
    return timedelta(days=int(getattr(settings, "ROOST_PKI_CRL_DAYS", 7)))


def publish_crl(ca: CertificateAuthority) -> bytes:
    """Sign and store a new CRL for `ca` with the next CRL number; returns its DER."""
    with transaction.atomic():
        ca = CertificateAuthority.objects.select_for_update().get(pk=ca.pk)
        now = timezone.now().replace(microsecond=0)
        ca_cert = load_pem(ca.certificate_pem)
        key = keystore.load_ca_key(ca.key_file)
        number = ca.crl_number + 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now)
            .next_update(now + crl_lifetime())
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key(ca_cert)),
                           critical=False)
        )
        for entry in _revoked_entries(ca, now):
            builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(key, signature_hash_for(key))
        der = crl.public_bytes(serialization.Encoding.DER)
        ca.crl_number = number
        ca.crl_der = der
        ca.crl_next_update = now + crl_lifetime()
        ca.save(update_fields=["crl_number", "crl_der", "crl_next_update"])
        # The broker checks device certificates against the CRLs at the TLS handshake.
        record_change("crl", "published", ca.pk, tenant=ca.tenant, payload={"number": number})
    return der


def _needs_refresh(ca: CertificateAuthority, now: datetime) -> bool:
    if not ca.crl_der or ca.crl_next_update is None:
        return True
    # Re-sign once half the lifetime has passed, so relying parties never hold a stale CRL.
    return ca.crl_next_update - now < crl_lifetime() / 2


def current_crl(ca: CertificateAuthority) -> bytes:
    """The CA's CRL in DER, re-signed first when it is missing or half-way to its nextUpdate."""
    crl = ca.crl_der
    if crl is None or _needs_refresh(ca, timezone.now()):
        return publish_crl(ca)
    return bytes(crl)


def client_crl_bundle() -> str:
    """PEM of a current CRL for every CA the broker trusts (signed anew where due): with them
    the broker refuses a revoked device certificate at the TLS handshake."""
    from .ca import valid_cas

    pems = []
    for ca in valid_cas():
        der = current_crl(ca)
        pems.append(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM).decode("ascii"))
    return "".join(pems)


def refresh_crls() -> int:
    """Re-sign every CRL that is due; CAs past their own expiry are left alone. Returns how many."""
    now = timezone.now()
    count = 0
    for ca in CertificateAuthority.objects.filter(not_after__gt=now):
        if _needs_refresh(ca, now):
            publish_crl(ca)
            count += 1
    return count


def mark_expired_certificates() -> int:
    """Flip active certificates past notAfter to expired and tell the broker (op="expired")."""
    now = timezone.now()
    count = 0
    for pk in Certificate.objects.filter(status=CertificateStatus.ACTIVE, not_after__lte=now).values_list(
            "pk", flat=True):
        with transaction.atomic():
            # Conditional update: a concurrent revocation wins and this row is skipped.
            if not Certificate.objects.filter(pk=pk, status=CertificateStatus.ACTIVE).update(
                    status=CertificateStatus.EXPIRED):
                continue
            cert = Certificate.objects.select_related("tenant").get(pk=pk)
            record_change("certificate", "expired", cert.pk, tenant=cert.tenant,
                          payload={"serial": cert.serial, "fingerprint": cert.fingerprint,
                                   "device": cert.device_name, "tenant": cert.tenant.slug})
            count += 1
    return count


def rotate_expiring_issuing_cas() -> int:
    """Rotate active issuing CAs that could no longer give a new certificate its full validity."""
    horizon = timezone.now() + timedelta(days=int(getattr(settings, "ROOST_PKI_DEVICE_CERT_DAYS", 365)))
    count = 0
    for ca in CertificateAuthority.objects.filter(kind=CaKind.ISSUING, active=True, not_after__lt=horizon):
        assert ca.tenant is not None
        create_issuing_ca(ca.tenant, actor=Actor.system("pki.tasks"))
        count += 1
    return count
