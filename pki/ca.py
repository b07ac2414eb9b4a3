"""The CA hierarchy: one platform root (P-384, 10 years) and one issuing CA per tenant (P-256, 5 years)."""

from __future__ import annotations

import logging
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import NameOID
from django.db import IntegrityError, transaction
from django.utils import timezone

from devices.audit import Actor, record_audit
from devices.changes import record_change
from devices.models import Tenant

from . import keystore
from .errors import PkiError, not_found
from .models import CaKind, CertificateAuthority
from .x509util import (
    authority_information_access,
    crl_distribution_points,
    issuer_public_key,
    load_pem,
    pem,
    random_serial,
    serial_hex,
    signature_hash_for,
    utc,
)

logger = logging.getLogger(__name__)

ROOT_VALIDITY = timedelta(days=3652)
ISSUING_VALIDITY = timedelta(days=1826)
# Certificates are back-dated a little so that a device whose clock lags still accepts them.
BACKDATE = timedelta(hours=1)


def _ca_extensions(builder: x509.CertificateBuilder, key: CertificateIssuerPrivateKeyTypes,
                   path_length: int) -> x509.CertificateBuilder:
    return (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _key_id(cert: x509.Certificate) -> str:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()


def _save_ca(cert: x509.Certificate, key: PrivateKeyTypes, **fields: object) -> CertificateAuthority:
    key_id = _key_id(cert)
    key_file = keystore.store_ca_key(key_id, key)
    return CertificateAuthority.objects.create(
        subject=cert.subject.rfc4514_string()[:255],
        serial=serial_hex(cert.serial_number),
        certificate_pem=pem(cert),
        key_file=key_file,
        key_id=key_id,
        not_before=utc(cert.not_valid_before_utc),
        not_after=utc(cert.not_valid_after_utc),
        **fields,
    )


def root_ca() -> CertificateAuthority | None:
    return CertificateAuthority.objects.filter(kind=CaKind.ROOT, active=True).first()


def ensure_root_ca() -> tuple[CertificateAuthority, bool]:
    """The platform root CA, created on first call. Returns (ca, created)."""
    existing = root_ca()
    if existing is not None:
        return existing, False
    key = ec.generate_private_key(ec.SECP384R1())
    now = timezone.now().replace(microsecond=0)
    # A short random suffix keeps two Roost installations from presenting the same root name.
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Roost"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Roost Root CA {random_serial() % 0xFFFFFF:06x}"),
    ])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_VALIDITY)
    )
    # path_length=1: the root signs issuing CAs, which sign only end entities.
    cert = _ca_extensions(builder, key, path_length=1).sign(key, signature_hash_for(key))
    try:
        with transaction.atomic():
            ca = _save_ca(cert, key, kind=CaKind.ROOT)
            record_audit(Actor.system("initpki"), "pki.root_ca.create", ca, tenant=None,
                         after={"subject": ca.subject, "not_after": ca.not_after.isoformat()})
            record_change("certificate_authority", "created", ca.pk, tenant=None,
                          payload={"kind": CaKind.ROOT, "key_id": ca.key_id})
    except IntegrityError:
        # Another process created the root at the same moment; theirs wins.
        keystore.discard_ca_key(_key_id(cert))
        existing = root_ca()
        if existing is None:
            raise
        return existing, False
    write_root_pem(ca)
    logger.info("created platform root CA %s", ca.subject)
    return ca, True


def write_root_pem(ca: CertificateAuthority) -> None:
    """Keep ROOST_DATA_DIR/pki/root-ca.pem current for tools that want the trust anchor as a file."""
    keystore.write_public_file(keystore.pki_dir() / "root-ca.pem", ca.certificate_pem.encode())


def create_issuing_ca(tenant: Tenant, *, actor: Actor | None = None) -> CertificateAuthority:
    """A new issuing CA for the tenant, signed by the root; it becomes the tenant's active one.

    The previous active CA (if any) is retired: it signs nothing new but still answers CRL and
    OCSP requests and stays in the broker's trust bundle until it expires.
    """
    actor = actor or Actor.system()
    root, _ = ensure_root_ca()
    root_cert = load_pem(root.certificate_pem)
    root_key = keystore.load_ca_key(root.key_file)
    key = ec.generate_private_key(ec.SECP256R1())
    now = timezone.now().replace(microsecond=0)
    not_after = min(now + ISSUING_VALIDITY, root.not_after)
    if not_after <= now + timedelta(days=1):
        raise PkiError("The platform root CA expires too soon to sign an issuing CA.", code="root_expiring",
                       status=503)
    with transaction.atomic():
        previous = (CertificateAuthority.objects.select_for_update()
                    .filter(kind=CaKind.ISSUING, tenant=tenant, active=True).first())
        generation = CertificateAuthority.objects.filter(kind=CaKind.ISSUING, tenant=tenant).count() + 1
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Roost"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, tenant.slug),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Roost {tenant.slug} issuing CA {generation}"[:64]),
        ])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(root_cert.subject)
            .public_key(key.public_key())
            .serial_number(random_serial())
            .not_valid_before(max(now - BACKDATE, root.not_before))
            .not_valid_after(not_after)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key(root_cert)),
                           critical=False)
            .add_extension(crl_distribution_points(root.pk), critical=False)
            .add_extension(authority_information_access(root.pk, ocsp=False), critical=False)
        )
        cert = _ca_extensions(builder, key, path_length=0).sign(root_key, signature_hash_for(root_key))
        if previous is not None:
            previous.active = False
            previous.save(update_fields=["active"])
        ca = _save_ca(cert, key, kind=CaKind.ISSUING, tenant=tenant, parent=root)
        action = "pki.issuing_ca.rotate" if previous else "pki.issuing_ca.create"
        record_audit(actor, action, ca, tenant=tenant,
                     before={"ca": previous.pk, "subject": previous.subject} if previous else None,
                     after={"ca": ca.pk, "subject": ca.subject, "not_after": ca.not_after.isoformat()})
        record_change("certificate_authority", "rotated" if previous else "created", ca.pk, tenant=tenant,
                      payload={"kind": CaKind.ISSUING, "tenant": tenant.slug, "key_id": ca.key_id,
                               "previous": previous.pk if previous else None})
    logger.info("created issuing CA %s for tenant %s", ca.subject, tenant.slug)
    return ca


def rotate_issuing_ca(tenant: Tenant, *, actor: Actor | None = None) -> CertificateAuthority:
    return create_issuing_ca(tenant, actor=actor)


def active_issuing_ca(tenant: Tenant) -> CertificateAuthority:
    """The tenant's signing CA; created on demand for tenants that predate the PKI."""
    ca = CertificateAuthority.objects.filter(kind=CaKind.ISSUING, tenant=tenant, active=True).first()
    if ca is not None and not ca.is_expired:
        return ca
    return create_issuing_ca(tenant)


def get_ca(ca_id: int) -> CertificateAuthority:
    ca = CertificateAuthority.objects.filter(pk=ca_id).first()
    if ca is None:
        raise not_found(f"No certificate authority with id {ca_id}.")
    return ca


def chain_pem(ca: CertificateAuthority) -> str:
    """The CA's certificate followed by its parents up to and including the root."""
    parts: list[str] = []
    node: CertificateAuthority | None = ca
    while node is not None and len(parts) < 4:
        parts.append(node.certificate_pem)
        node = node.parent
    return "".join(parts)


def valid_cas() -> list[CertificateAuthority]:
    now = timezone.now()
    return list(CertificateAuthority.objects.filter(not_before__lte=now, not_after__gt=now)
                .select_related("tenant").order_by("kind", "pk"))


def trusted_client_ca_bundle() -> str:
    """PEM of the root and every issuing CA still valid (retired ones too): the broker's mTLS trust."""
    ensure_root_ca()
    return "".join(ca.certificate_pem for ca in valid_cas())
