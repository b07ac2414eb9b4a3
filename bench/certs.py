"""A throwaway test PKI for the mTLS scenario: ECDSA P-256 throughout.

One CA, a server certificate for 127.0.0.1, and one client certificate per
device, written as a single PEM bundle of (certificate, key) pairs that the
load generator reads in order. The certificate's common name is the client id.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from brokers import TlsFiles
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_ID_FORMAT = "bench-dev-{:05d}"


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Roost bench"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path, clients: int) -> TlsFiles:
    """Write the CA, the server pair and a bundle of `clients` device pairs."""
    directory.mkdir(parents=True, exist_ok=True)
    curve = ec.SECP256R1()
    ca_key = ec.generate_private_key(curve)
    ca_cert = _cert("Roost bench CA", ca_key, _name("Roost bench CA"), ca_key, ca=True)
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_bundle=directory / "clients.pem",
    )
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_key = ec.generate_private_key(curve)
    server_cert = _cert("127.0.0.1", server_key, ca_cert.subject, ca_key, server=True)
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(_key_pem(server_key))
    files.server_key.chmod(0o600)
    with open(files.client_bundle, "wb") as bundle:
        for i in range(clients):
            key = ec.generate_private_key(curve)
            cert = _cert(CLIENT_ID_FORMAT.format(i), key, ca_cert.subject, ca_key)
            bundle.write(cert.public_bytes(serialization.Encoding.PEM))
            bundle.write(_key_pem(key))
    return files
