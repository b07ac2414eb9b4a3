"""Where PKI files live under ROOST_DATA_DIR/pki/, and how CA private keys are sealed at rest.

CA keys are PKCS#8 PEM files encrypted with the PKI passphrase. The passphrase comes from
ROOST_PKI_PASSPHRASE (required in production, see settings); for local use a random one is
generated once into ROOST_DATA_DIR/pki/passphrase with mode 0600, so a laptop needs no setup.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .errors import PkiError


def pki_dir() -> Path:
    path = Path(settings.ROOST_DATA_DIR) / "pki"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def ca_key_dir() -> Path:
    path = pki_dir() / "ca"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Write a secret file that is 0600 from its first byte (no window with wider rights)."""
    tmp = path.with_name(path.name + f".{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_public_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def passphrase() -> bytes:
    configured = getattr(settings, "ROOST_PKI_PASSPHRASE", "") or ""
    if configured:
        return configured.encode()
    if getattr(settings, "PRODUCTION", False):
        raise ImproperlyConfigured("ROOST_PKI_PASSPHRASE must be set when ROOST_ENV=production")
    path = pki_dir() / "passphrase"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process generated it first; read theirs
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


def seal_private_key(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase()),
    )


def store_ca_key(key_id: str, key: PrivateKeyTypes) -> str:
    """Seal and write a CA key; returns the file name recorded on the CA row."""
    name = f"{key_id}.key.pem"
    write_private_file(ca_key_dir() / name, seal_private_key(key))
    return name


def load_ca_key(name: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    path = ca_key_dir() / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PkiError(
            f"The CA key file {path} is missing; restore ROOST_DATA_DIR/pki from backup.",
            code="ca_key_missing", status=503,
        ) from None
    try:
        key = serialization.load_pem_private_key(data, passphrase())
    except (ValueError, TypeError):
        raise PkiError(
            f"The CA key file {path} cannot be decrypted with the configured PKI passphrase.",
            code="ca_key_locked", status=503,
        ) from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise PkiError(f"The CA key file {path} holds an unexpected key type.", code="ca_key_invalid", status=503)
    return key


def discard_ca_key(key_id: str) -> None:
    """Remove the key file of a CA whose row was never saved (it lost a creation race)."""
    (ca_key_dir() / f"{key_id}.key.pem").unlink(missing_ok=True)
