"""What the broker integration calls: its server certificate, the client trust bundle, identity lookups."""

from __future__ import annotations

import fcntl
import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from devices.audit import Actor, record_audit
from devices.changes import record_change

from . import keystore
from .ca import ensure_root_ca, trusted_client_ca_bundle
from .issuance import certificate_by_fingerprint
from .revocation import client_crl_bundle, refresh_crls
from .x509util import (
    crl_distribution_points,
    fingerprint,
    issuer_public_key,
    load_pem,
    random_serial,
    signature_hash_for,
)

logger = logging.getLogger(__name__)

SERVER_CERT_VALIDITY = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
CHAIN_FILE = "broker-server.pem"
KEY_FILE = "broker-server.key"

__all__ = [
    "BrokerTlsFiles",
    "certificate_by_fingerprint",
    "client_crl_bundle",
    "ensure_broker_server_certificate",
    "refresh_crls",
    "trusted_client_ca_bundle",
]


class BrokerTlsFiles(NamedTuple):
    """Unpacks as (chain_path, key_path)."""

    chain_path: Path  # the server certificate (then any intermediates), PEM
    key_path: Path  # its private key, unencrypted PEM, mode 0600


def _wanted_names() -> set[x509.GeneralName]:
    names: set[x509.GeneralName] = set()
    for host in settings.ROOST_BROKER_HOSTNAMES:
        try:
            names.add(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            names.add(x509.DNSName(host.lower()))
    return names


def _user_provided() -> BrokerTlsFiles | None:
    cert_path = getattr(settings, "ROOST_BROKER_TLS_CERT", "") or ""
    key_path = getattr(settings, "ROOST_BROKER_TLS_KEY", "") or ""
    if not cert_path and not key_path:
        return None
    if not (cert_path and key_path):
        raise ImproperlyConfigured("Set both ROOST_BROKER_TLS_CERT and ROOST_BROKER_TLS_KEY, or neither.")
    try:
        certs = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"ROOST_BROKER_TLS_CERT/ROOST_BROKER_TLS_KEY cannot be loaded: {exc}") from exc
    if certs[0].public_key() != key.public_key():
        raise ImproperlyConfigured("ROOST_BROKER_TLS_KEY is not the key of ROOST_BROKER_TLS_CERT.")
    return BrokerTlsFiles(Path(cert_path), Path(key_path))


def _current_is_fine(chain_path: Path, key_path: Path, root_pem: str) -> bool:
    if not (chain_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificates(chain_path.read_bytes())[0]
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        sans = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (ValueError, TypeError, x509.ExtensionNotFound):
        return False
    root = load_pem(root_pem)
    return (
        cert.public_key() == key.public_key()
        and cert.issuer == root.subject
        and cert.not_valid_after_utc - timezone.now() > RENEW_BEFORE
        and sans == _wanted_names()
    )


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Web, worker and broker may all start at once; one of them renews, the others wait and reuse.
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_broker_server_certificate() -> BrokerTlsFiles:
    """Paths of the broker's TLS chain and key: user-provided, or issued by the root and kept fresh.

    Renewed when missing, within 30 days of expiry, signed by another root, or when
    ROOST_BROKER_HOSTNAMES no longer matches its SANs. A renewal writes a change event
    (kind="broker_certificate", op="renewed") so a running broker can reload its TLS context.
    """
    provided = _user_provided()
    if provided is not None:
        return provided
    directory = keystore.pki_dir()
    chain_path, key_path = directory / CHAIN_FILE, directory / KEY_FILE
    root, _ = ensure_root_ca()
    with _file_lock(directory / "broker-server.lock"):
        if _current_is_fine(chain_path, key_path, root.certificate_pem):
            return BrokerTlsFiles(chain_path, key_path)
        root_cert = load_pem(root.certificate_pem)
        root_key = keystore.load_ca_key(root.key_file)
        key = ec.generate_private_key(ec.SECP256R1())
        now = timezone.now().replace(microsecond=0)
        hostnames = list(settings.ROOST_BROKER_HOSTNAMES) or ["localhost"]
        names = sorted(_wanted_names(), key=str)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Roost"),
                x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0][:64]),
            ]))
            .issuer_name(root_cert.subject)
            .public_key(key.public_key())
            .serial_number(random_serial())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(min(now + SERVER_CERT_VALIDITY, root.not_after))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key(root_cert)),
                           critical=False)
            .add_extension(crl_distribution_points(root.pk), critical=False)
            .sign(root_key, signature_hash_for(root_key))
        )
        keystore.write_private_file(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        # The server certificate is signed by the root itself, so the chain is the certificate alone.
        keystore.write_public_file(chain_path, cert.public_bytes(serialization.Encoding.PEM))
        keystore.write_public_file(directory / "root-ca.pem", root.certificate_pem.encode())
        payload = {"fingerprint": fingerprint(cert), "hostnames": hostnames,
                   "not_after": cert.not_valid_after_utc.isoformat(),
                   "chain_path": str(chain_path), "key_path": str(key_path)}
        with transaction.atomic():
            record_audit(Actor.system("pki"), "pki.broker_certificate.issue", None, tenant=None, after=payload)
            record_change("broker_certificate", "renewed", payload["fingerprint"], tenant=None, payload=payload)
    logger.info("issued the broker server certificate for %s", ", ".join(hostnames))
    return BrokerTlsFiles(chain_path, key_path)
