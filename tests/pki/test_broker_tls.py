"""The broker's server certificate, its renewal, and a real mutual-TLS handshake with a device certificate."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from devices.models import ChangeEvent
from pki import keystore
from pki.broker import ensure_broker_server_certificate, trusted_client_ca_bundle
from pki.ca import ensure_root_ca
from pki.issuance import issue_with_generated_key

from .helpers import key_pem, openssl_verify, write


def _server_cert() -> x509.Certificate:
    return x509.load_pem_x509_certificates(ensure_broker_server_certificate().chain_path.read_bytes())[0]


@pytest.mark.django_db
def test_the_broker_certificate_names_every_configured_host_and_is_for_servers(tmp_path: Path) -> None:
    chain_path, key_path = ensure_broker_server_certificate()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = _server_cert()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    root = ensure_root_ca()[0].certificate_pem
    assert openssl_verify(tmp_path, root=root, leaf=chain_path.read_text(),
                          extra=("-purpose", "sslserver")).returncode == 0
    assert openssl_verify(tmp_path, root=root, leaf=chain_path.read_text(),
                          extra=("-purpose", "sslclient")).returncode != 0


@pytest.mark.django_db
def test_the_broker_certificate_is_reused_while_fresh(pki_data_dir: Path) -> None:
    first = _server_cert()
    assert _server_cert() == first
    assert ChangeEvent.objects.filter(kind="broker_certificate", op="renewed").count() == 1


@pytest.mark.django_db
def test_the_broker_certificate_is_renewed_when_the_hostnames_change(settings: Any) -> None:
    first = _server_cert()
    settings.ROOST_BROKER_HOSTNAMES = ["mqtt.example.net", "10.0.0.7"]
    second = _server_cert()
    assert second != first
    san = second.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mqtt.example.net"]
    change = ChangeEvent.objects.filter(kind="broker_certificate", op="renewed").last()
    assert change is not None and change.payload["hostnames"] == ["mqtt.example.net", "10.0.0.7"]


@pytest.mark.django_db
def test_the_broker_certificate_is_renewed_within_thirty_days_of_expiry(pki_data_dir: Path) -> None:
    first = _server_cert()
    # Replace it with one that expires in 29 days, signed by the same root.
    root = ensure_root_ca()[0]
    root_key = keystore.load_ca_key(root.key_file)
    key = ec.generate_private_key(ec.SECP256R1())
    now = timezone.now()
    near = (x509.CertificateBuilder().subject_name(first.subject).issuer_name(first.issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=300)).not_valid_after(now + timedelta(days=29))
            .add_extension(first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False)
            .sign(root_key, hashes.SHA384()))
    write(pki_data_dir / "pki" / "broker-server.pem", near.public_bytes(serialization.Encoding.PEM))
    write(pki_data_dir / "pki" / "broker-server.key", key_pem(key))
    renewed = _server_cert()
    assert renewed != near and renewed.not_valid_after_utc > now + timedelta(days=300)


@pytest.mark.django_db
def test_a_user_provided_certificate_and_key_are_used_as_they_are(settings: Any, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mqtt.example.com")])
    now = timezone.now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=90))
            .sign(key, hashes.SHA256()))
    settings.ROOST_BROKER_TLS_CERT = str(write(tmp_path / "mine.pem", cert.public_bytes(serialization.Encoding.PEM)))
    settings.ROOST_BROKER_TLS_KEY = str(write(tmp_path / "mine.key", key_pem(key)))
    assert ensure_broker_server_certificate() == (tmp_path / "mine.pem", tmp_path / "mine.key")
    settings.ROOST_BROKER_TLS_KEY = str(write(tmp_path / "other.key", key_pem(ec.generate_private_key(ec.SECP256R1()))))
    with pytest.raises(ImproperlyConfigured):
        ensure_broker_server_certificate()


def _serve_once(server_ctx: ssl.SSLContext, listener: socket.socket, outcome: dict[str, Any]) -> None:
    conn, _ = listener.accept()
    try:
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert()
            outcome["peer_cn"] = dict(x[0] for x in peer["subject"])["commonName"]
            tls.sendall(b"hello " + outcome["peer_cn"].encode())
    except (ssl.SSLError, OSError) as exc:
        outcome["error"] = exc
    finally:
        conn.close()


def _handshake(tmp_path: Path, client_chain: str, client_key: bytes, root_pem: str) -> tuple[dict[str, Any], bytes]:
    chain_path, key_path = ensure_broker_server_certificate()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(chain_path, key_path)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cadata=trusted_client_ca_bundle())
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx.load_verify_locations(cadata=root_pem)
    client_ctx.load_cert_chain(write(tmp_path / "client.pem", client_chain), write(tmp_path / "client.key", client_key))
    outcome: dict[str, Any] = {}
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        server = threading.Thread(target=_serve_once, args=(server_ctx, listener, outcome), daemon=True)
        server.start()
        data = b""
        try:
            # server_hostname=127.0.0.1 makes the client check the IP SAN, as a device would.
            with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                    client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                data = tls.recv(100)
        except (ssl.SSLError, OSError) as exc:
            outcome["client_error"] = exc
        server.join(10)
    return outcome, data


@pytest.mark.django_db
def test_a_device_certificate_completes_a_mutual_tls_handshake_with_the_broker_certificate(
        acme_sensor: Any, tmp_path: Path) -> None:
    issued = issue_with_generated_key(acme_sensor)
    outcome, data = _handshake(tmp_path, issued.certificate_pem + issued.chain_pem,
                               issued.private_key_pem.encode(), issued.root_pem)
    assert "error" not in outcome and "client_error" not in outcome, outcome
    assert outcome["peer_cn"] == "sensor-1" and data == b"hello sensor-1"


@pytest.mark.django_db
def test_a_client_certificate_from_a_foreign_ca_is_refused_by_the_handshake(acme: Any, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensor-1")])
    now = timezone.now()
    rogue = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
             .serial_number(7).not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
             .sign(key, hashes.SHA256()))
    outcome, data = _handshake(tmp_path, rogue.public_bytes(serialization.Encoding.PEM).decode(), key_pem(key),
                               ensure_root_ca()[0].certificate_pem)
    assert "error" in outcome and data == b""


@pytest.mark.django_db
def test_a_device_that_sends_only_its_leaf_is_still_accepted_because_the_bundle_holds_its_issuing_ca(
        acme_sensor: Any, tmp_path: Path) -> None:
    issued = issue_with_generated_key(acme_sensor)
    outcome, data = _handshake(tmp_path, issued.certificate_pem, issued.private_key_pem.encode(), issued.root_pem)
    assert outcome.get("peer_cn") == "sensor-1" and data == b"hello sensor-1"


@pytest.mark.django_db
def test_the_client_refuses_a_broker_certificate_that_does_not_chain_to_its_root(
        acme_sensor: Any, tmp_path: Path) -> None:
    issued = issue_with_generated_key(acme_sensor)
    # The device trusts only its own issuing CA, which never signed the broker certificate.
    outcome, data = _handshake(tmp_path, issued.certificate_pem, issued.private_key_pem.encode(), issued.chain_pem)
    assert "client_error" in outcome and data == b""
