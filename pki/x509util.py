"""Small X.509 helpers shared by the CA, issuance, CRL and OCSP code."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID
from django.conf import settings
from django.urls import reverse


def issuer_public_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The public key of one of the platform's CAs: EC or RSA, as keystore.load_ca_key() holds."""
    key = cert.public_key()
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise ValueError(f"{cert.subject.rfc4514_string()} has a {type(key).__name__}, not an EC or RSA key")
    return key


def random_serial() -> int:
    """A random positive serial of at most 20 octets (RFC 5280 4.1.2.2)."""
    raw = bytearray(secrets.token_bytes(20))
    # Clearing the top bit keeps the DER INTEGER positive without a 21st padding octet.
    raw[0] &= 0x7F
    value = int.from_bytes(raw, "big")
    return value or random_serial()


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def normalize_serial(text: str) -> str:
    """Accept what `openssl x509 -serial` prints (any case, colons, serial= prefix, leading zeros)."""
    value = text.strip().lower()
    if value.startswith("serial="):
        value = value[len("serial="):]
    value = value.replace(":", "").replace(" ", "")
    if value.startswith("0x"):
        value = value[2:]
    if not value or len(value) > 42 or any(c not in "0123456789abcdef" for c in value):
        return ""
    return value.lstrip("0") or "0"


def normalize_fingerprint(text: str) -> str:
    value = text.strip().lower().replace(":", "")
    if value.startswith("sha256:"):
        value = value[len("sha256:"):]
    return value


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def public_key_sha256(public_key: CertificateIssuerPublicKeyTypes) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_pem(text: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(text.encode())


def signature_hash_for(key: PrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384:
    """The hash that matches the signing key's strength (SHA-384 for P-384, SHA-256 otherwise)."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 3072:
        return hashes.SHA384()
    return hashes.SHA256()


def public_url(name: str, **kwargs: object) -> str:
    return settings.ROOST_PUBLIC_URL + reverse(name, kwargs=kwargs)


def crl_distribution_points(ca_id: int) -> x509.CRLDistributionPoints:
    url = public_url("pki:crl-der", ca_id=ca_id)
    return x509.CRLDistributionPoints([
        x509.DistributionPoint(full_name=[x509.UniformResourceIdentifier(url)], relative_name=None,
                               reasons=None, crl_issuer=None)
    ])


def authority_information_access(ca_id: int, *, ocsp: bool) -> x509.AuthorityInformationAccess:
    descriptions = [
        x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                               x509.UniformResourceIdentifier(public_url("pki:ca-der", ca_id=ca_id)))
    ]
    if ocsp:
        descriptions.insert(0, x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(public_url("pki:ocsp"))))
    return x509.AuthorityInformationAccess(descriptions)


def utc(value: datetime) -> datetime:
    """cryptography's *_utc accessors are aware; Django stores aware datetimes. Drop sub-seconds."""
    return value.replace(microsecond=0)
