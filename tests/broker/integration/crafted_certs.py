"""Device certificates made wrong on purpose, signed by the tenant's real issuing CA.

Runs inside the registry driver (it needs the platform's database and CA keys): pki never
issues any of these, so they are built here with cryptography's x509 builder — the point is
that the broker refuses them whoever signed them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GOOD_USAGE = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                           data_encipherment=False, key_agreement=True, key_cert_sign=False,
                           crl_sign=False, encipher_only=False, decipher_only=False)
FLAWS = ("none", "ca", "no_eku", "server_eku", "cert_sign_usage", "control_subject", "non_utf8_subject")
_MARK = "\u2603MARK"  # replaced in the signed bytes by invalid UTF-8 of the same length


def craft(tenant: object, name: str, out: str, flaw: str) -> None:
    """Write device.pem (leaf + issuing CA) and device.key for `name` with the given flaw."""
    from django.utils import timezone

    from pki import keystore
    from pki.ca import active_issuing_ca

    if flaw not in FLAWS:
        raise ValueError(f"unknown flaw {flaw!r}")
    ca = active_issuing_ca(tenant)
    ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    ca_key = keystore.load_ca_key(ca.key_file)
    key = ec.generate_private_key(ec.SECP256R1())
    now = timezone.now()
    common_name = {"control_subject": name + "\x1b[2J", "non_utf8_subject": name + _MARK}.get(flaw, name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, getattr(tenant, "slug", "")),
                                 x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=flaw == "ca", path_length=None), critical=True)
    )
    if flaw == "cert_sign_usage":
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=True, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        builder = builder.add_extension(GOOD_USAGE, critical=True)
    if flaw == "server_eku":
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif flaw != "no_eku":
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    der = cert.public_bytes(serialization.Encoding.DER)
    if flaw == "non_utf8_subject":
        der = _resign(cert, ca_key, _MARK.encode(), b"\xff\xfe" + b"X" * (len(_MARK.encode()) - 2))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    leaf_pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode() \
        if flaw != "non_utf8_subject" else _pem(der)
    (folder / "device.pem").write_text(leaf_pem + ca.certificate_pem)
    (folder / "device.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _resign(cert: x509.Certificate, ca_key: object, old: bytes, new: bytes) -> bytes:
    """The certificate with `old` replaced by `new` in its signed part, signed again.

    cryptography refuses to build (or even parse) a name that is not valid UTF-8, so the
    signed bytes are patched (same length, so every DER length stays right) and re-signed.
    """
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(old) == 1 and len(old) == len(new)
    tbs = tbs.replace(old, new)
    signature = ca_key.sign(tbs, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
    der = cert.public_bytes(serialization.Encoding.DER)
    # Certificate ::= SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }
    algorithm_start = _skip_header(der, 0) + len(tbs)
    algorithm_end = algorithm_start + _element_length(der, algorithm_start)
    body = tbs + der[algorithm_start:algorithm_end] + _tlv(0x03, b"\x00" + signature)
    return _tlv(0x30, body)


def _skip_header(der: bytes, at: int) -> int:
    first = der[at + 1]
    return at + 2 + (first & 0x7F if first & 0x80 else 0)


def _element_length(der: bytes, at: int) -> int:
    first = der[at + 1]
    if not first & 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(der[at + 2:at + 2 + count], "big")


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes((tag, n)) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + value


def _pem(der: bytes) -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
