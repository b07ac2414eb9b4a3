"""A throwaway CA with a server and a client certificate, made with `cryptography`, and a
check that a broker refuses a client in the TLS handshake."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path
    other_client_key: Path
    crl: Path | None = None
    """A CRL of the CA revoking `revoked_cert` (and nothing else)."""
    revoked_cert: Path | None = None
    revoked_key: Path | None = None


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))


def _issue(cn: str, issuer: x509.Name, issuer_key, server: bool, ca: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer if not ca else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(key if ca else issuer_key, hashes.SHA256())
    return key, cert


def make_pki(directory: Path) -> Pki:
    ca_key, ca_cert = _issue("Roost Test CA", _name("Roost Test CA"), None, False, ca=True)
    paths = {}
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for label, cn, server in (("server", "localhost", True), ("client", "device-1", False)):
        key, cert = _issue(cn, ca_cert.subject, ca_key, server)
        paths[label] = (directory / f"{label}.pem", directory / f"{label}.key")
        paths[label][0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, paths[label][1])
    # A client certificate from a CA the broker does not trust.
    other_key, other_ca = _issue("Other CA", _name("Other CA"), None, False, ca=True)
    key, cert = _issue("intruder", other_ca.subject, other_key, False)
    (directory / "other.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, directory / "other.key")
    # A client certificate of the CA, revoked by its CRL.
    key, cert = _issue("revoked-device", ca_cert.subject, ca_key, False)
    (directory / "revoked.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, directory / "revoked.key")
    now = datetime.datetime.now(datetime.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=1))
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                                 .revocation_date(now - datetime.timedelta(minutes=1)).build())
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return Pki(directory / "ca.pem", *paths["server"], *paths["client"],
               directory / "other.pem", directory / "other.key", directory / "crl.pem",
               directory / "revoked.pem", directory / "revoked.key")


def assert_refused_in_handshake(port: int, context: ssl.SSLContext, first_bytes: bytes) -> None:
    """The broker ends the connection in TLS. With TLS 1.3 a refused client certificate
    shows only on the first read, as an alert or a close."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)),
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(first_bytes)
        if not tls.recv(4):
            raise ConnectionResetError("closed")
