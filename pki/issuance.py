"""Device certificates: the CA imposes the subject, SAN, key usages and validity; a CSR only lends its key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from devices.audit import Actor, record_audit
from devices.changes import record_change
from devices.models import Device, Tenant
from devices.validators import DEVICE_NAME_RULE, is_valid_device_name

from . import keystore
from .ca import active_issuing_ca, chain_pem
from .csr import check_public_key, load_csr
from .errors import bad_request, conflict, not_found
from .models import Certificate, CertificateAuthority, CertifiedKey, CompromisedKey
from .x509util import (
    authority_information_access,
    crl_distribution_points,
    fingerprint,
    issuer_public_key,
    load_pem,
    normalize_fingerprint,
    pem,
    public_key_sha256,
    random_serial,
    serial_hex,
    signature_hash_for,
    utc,
)

CLOCK_SKEW = timedelta(minutes=5)
MAX_DAYS = 3650


def device_uri(tenant_slug: str, device_name: str) -> str:
    return f"urn:roost:tenant:{tenant_slug}:device:{device_name}"


@dataclass(frozen=True)
class IssuedCertificate:
    """What an issuance hands back. `private_key_pem` and `pkcs12` exist only for server-side keys."""

    certificate: Certificate
    certificate_pem: str
    chain_pem: str  # the issuing CA, so that devices can present the whole chain
    root_pem: str  # the trust anchor (the broker's server certificate chains to it too)
    private_key_pem: str = ""
    pkcs12: bytes = b""
    pkcs12_passphrase: str = ""


def find_device(tenant: Tenant, name: str) -> Device:
    """The tenant's device by name; a device of another tenant is simply not found."""
    if not is_valid_device_name(name):
        raise bad_request(f"Invalid device name {name!r}: use {DEVICE_NAME_RULE}.", code="invalid_device_name")
    device = Device.objects.filter(tenant=tenant, name=name).select_related("tenant").first()
    if device is None:
        raise not_found(f"No device {name!r} in tenant {tenant.slug!r}.", code="device_not_found")
    return device


def _validity_days(days: int | None) -> int:
    value = days if days is not None else int(getattr(settings, "ROOST_PKI_DEVICE_CERT_DAYS", 365))
    if not 1 <= value <= MAX_DAYS:
        raise bad_request(f"Certificate validity must be between 1 and {MAX_DAYS} days.", code="invalid_days")
    return value


def _key_usage(public_key: CertificateIssuerPublicKeyTypes) -> x509.KeyUsage:
    is_ec = isinstance(public_key, ec.EllipticCurvePublicKey)
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False,
        # RSA TLS 1.2 key exchange encrypts to the key; ECDH uses it for key agreement.
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey), data_encipherment=False,
        key_agreement=is_ec, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    )


class CaSigner:
    """The device-certificate profile of one issuing CA, with its key loaded once.

    One certificate uses it once; a bulk import keeps one for thousands, since decrypting the
    CA key and building the CRL and OCSP URLs is most of the cost of a single issuance.
    """

    def __init__(self, ca: CertificateAuthority) -> None:
        self.ca = ca
        self.ca_cert = load_pem(ca.certificate_pem)
        self.ca_key = keystore.load_ca_key(ca.key_file)
        self.hash = signature_hash_for(self.ca_key)
        self._shared = [
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key(self.ca_cert)), False),
            (crl_distribution_points(ca.pk), False),
            (authority_information_access(ca.pk, ocsp=True), False),
        ]

    def build(self, device: Device, public_key: CertificateIssuerPublicKeyTypes, days: int) -> x509.Certificate:
        ca = self.ca
        now = timezone.now().replace(microsecond=0)
        not_before = max(now - CLOCK_SKEW, ca.not_before)
        not_after = min(now + timedelta(days=days), ca.not_after)
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, device.tenant.slug),
            x509.NameAttribute(NameOID.COMMON_NAME, device.name[:64]),
        ])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca_cert.subject)
            .public_key(public_key)
            .serial_number(random_serial())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(public_key), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(device_uri(device.tenant.slug, device.name))]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        for extension, critical in self._shared:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(self.ca_key, self.hash)


def _build(device: Device, public_key: CertificateIssuerPublicKeyTypes, ca: CertificateAuthority,
           days: int) -> x509.Certificate:
    return CaSigner(ca).build(device, public_key, days)


def _claim_key(device: Device, key_hash: str) -> None:
    """One key, one device: a key already certified for another device is refused.

    The claim is a row with a unique key hash, so of two concurrent issuances of one key for
    two devices the database lets one through (the other waits for it, then conflicts).
    A key once revoked for keyCompromise is refused for everyone, its own device included.
    """
    if CompromisedKey.objects.filter(public_key_sha256=key_hash).exists():
        raise conflict("This public key was revoked for key compromise and is never certified again; "
                       "generate a new key.", code="public_key_compromised")
    try:
        with transaction.atomic():
            owner, _ = CertifiedKey.objects.get_or_create(
                public_key_sha256=key_hash, defaults={"tenant": device.tenant, "device_name": device.name})
    except IntegrityError:
        owner = CertifiedKey.objects.get(public_key_sha256=key_hash)
    if (owner.tenant_id, owner.device_name) != (device.tenant_id, device.name):
        raise conflict("This public key is already certified for another device; generate a new key.",
                       code="public_key_in_use")


def issue_certificate(device: Device, public_key: object, *, actor: Actor | None = None,
                      days: int | None = None, server_generated: bool = False) -> Certificate:
    """Sign `public_key` for `device` with its tenant's active issuing CA, store, audit and announce it."""
    actor = actor or Actor.system()
    key = check_public_key(public_key)
    days = _validity_days(days)
    key_hash = public_key_sha256(key)
    ca = active_issuing_ca(device.tenant)
    with transaction.atomic():
        _claim_key(device, key_hash)
        cert = _build(device, key, ca, days)
        try:
            with transaction.atomic():
                record = Certificate.objects.create(
                    tenant=device.tenant, device=device, device_name=device.name, issuer=ca,
                    serial=serial_hex(cert.serial_number), fingerprint=fingerprint(cert),
                    public_key_sha256=key_hash, subject=cert.subject.rfc4514_string()[:255],
                    not_before=utc(cert.not_valid_before_utc), not_after=utc(cert.not_valid_after_utc),
                    issued_by=actor.label[:200], key_generated_by_server=server_generated,
                    certificate_pem=pem(cert),
                )
        except IntegrityError:
            # A 159-bit random serial colliding is not a real event; a concurrent identical key is.
            raise conflict("A certificate with this serial or fingerprint already exists; retry.",
                           code="duplicate_certificate") from None
        payload = {"serial": record.serial, "fingerprint": record.fingerprint, "device": device.name,
                   "tenant": device.tenant.slug, "not_after": record.not_after.isoformat(),
                   "issuer_ca": ca.pk}
        record_audit(actor, "certificate.issue", record, tenant=device.tenant, after=payload)
        record_change("certificate", "issued", record.pk, tenant=device.tenant, payload=payload)
    return record


def bundle_for(record: Certificate, *, private_key_pem: str = "", pkcs12: bytes = b"",
               pkcs12_passphrase: str = "") -> IssuedCertificate:
    issuer = record.issuer
    root = issuer.parent
    return IssuedCertificate(
        certificate=record,
        certificate_pem=record.certificate_pem,
        chain_pem=issuer.certificate_pem,
        root_pem=root.certificate_pem if root is not None else chain_pem(issuer),
        private_key_pem=private_key_pem,
        pkcs12=pkcs12,
        pkcs12_passphrase=pkcs12_passphrase,
    )


def issue_from_csr(device: Device, csr_data: bytes | str, *, actor: Actor | None = None,
                   days: int | None = None) -> IssuedCertificate:
    """Sign a CSR's key (after proof of possession); nothing else from the CSR is used."""
    csr = load_csr(csr_data)
    record = issue_certificate(device, csr.public_key(), actor=actor, days=days)
    return bundle_for(record)


def issue_with_generated_key(device: Device, *, actor: Actor | None = None, days: int | None = None,
                             passphrase: str = "") -> IssuedCertificate:
    """Generate an ECDSA P-256 key here and hand it back once (PEM and PKCS#12); it is never stored."""
    key = ec.generate_private_key(ec.SECP256R1())
    record = issue_certificate(device, key.public_key(), actor=actor, days=days, server_generated=True)
    passphrase = passphrase or secrets.token_urlsafe(18)
    cert = load_pem(record.certificate_pem)
    ca_cert = load_pem(record.issuer.certificate_pem)
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(200_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(passphrase.encode())
    )
    p12 = pkcs12.serialize_key_and_certificates(device.name.encode(), key, cert, [ca_cert], encryption)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return bundle_for(record, private_key_pem=key_pem, pkcs12=p12, pkcs12_passphrase=passphrase)


def certificate_by_fingerprint(value: str) -> Certificate | None:
    """The certificate with this SHA-256 fingerprint (hex, any case, colons allowed), or None."""
    return (Certificate.objects.filter(fingerprint=normalize_fingerprint(value))
            .select_related("tenant", "device", "issuer").first())
