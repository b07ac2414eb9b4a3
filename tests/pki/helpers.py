"""Test helpers: keys, CSRs (well-formed and deliberately bad), files and openssl."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def csr_pem(key: Any = None, *, cn: str = "sensor-1", extensions: list[tuple[Any, bool]] | None = None,
            algorithm: Any = hashes.SHA256()) -> str:
    key = key or p256()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    for ext, critical in extensions or []:
        builder = builder.add_extension(ext, critical=critical)
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def greedy_csr_pem(key: Any = None) -> str:
    """A CSR that asks for everything a device must never get."""
    return csr_pem(key, cn="evil-root", extensions=[
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                       data_encipherment=True, key_agreement=True, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]), False),
        (x509.SubjectAlternativeName([x509.DNSName("broker.example"), x509.DNSName("*.example")]), False),
    ])


def key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_cert(pem: str | bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def openssl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30, cwd=cwd)


def openssl_verify(tmp: Path, *, root: str, leaf: str, untrusted: str = "",
                   extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    args = ["verify", "-CAfile", str(write(tmp / "verify-root.pem", root))]
    if untrusted:
        args += ["-untrusted", str(write(tmp / "verify-untrusted.pem", untrusted))]
    return openssl(*args, *extra, str(write(tmp / "verify-leaf.pem", leaf)))


def csr_with_swapped_key() -> str:
    """A CSR signed by one key but carrying another key: a failed proof of possession."""
    signer, other = p256(), p256()
    der = x509.load_pem_x509_csr(csr_pem(signer).encode()).public_bytes(serialization.Encoding.DER)
    point = lambda k: k.public_key().public_bytes(  # noqa: E731
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert point(signer) in der
    swapped = der.replace(point(signer), point(other))
    return x509.load_der_x509_csr(swapped).public_bytes(serialization.Encoding.PEM).decode()


def sha1_csr_pem(tmp: Path) -> str:
    """cryptography no longer signs with SHA-1, so openssl makes this one."""
    key = write(tmp / "sha1.key", key_pem(p256()))
    result = openssl("req", "-new", "-sha1", "-key", str(key), "-subj", "/CN=sensor-1")
    assert result.returncode == 0, result.stderr
    return result.stdout
