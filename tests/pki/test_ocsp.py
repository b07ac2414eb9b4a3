"""The OCSP responder, checked with `openssl ocsp` against a live server and with cryptography."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from pki.ca import ensure_root_ca, rotate_issuing_ca
from pki.issuance import issue_from_csr
from pki.revocation import revoke_certificate

from .helpers import csr_pem, load_cert, openssl, write


def _openssl_ocsp(tmp_path: Path, live_server: Any, issued: Any) -> str:
    port = live_server.url.rsplit(":", 1)[1]
    result = openssl(
        "ocsp", "-issuer", str(write(tmp_path / "issuer.pem", issued.chain_pem)),
        "-cert", str(write(tmp_path / "leaf.pem", issued.certificate_pem)),
        "-CAfile", str(write(tmp_path / "root.pem", issued.root_pem)),
        "-verify_other", str(tmp_path / "issuer.pem"),
        "-url", f"http://127.0.0.1:{port}/pki/ocsp",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Response verify OK" in result.stderr + result.stdout
    return result.stdout


@pytest.mark.django_db(transaction=True)
def test_openssl_ocsp_hears_good_for_a_valid_and_revoked_for_a_revoked_certificate(
        acme_sensor: Any, live_server: Any, tmp_path: Path) -> None:
    good = issue_from_csr(acme_sensor, csr_pem())
    bad = issue_from_csr(acme_sensor, csr_pem())
    revoke_certificate(bad.certificate, "keyCompromise")
    assert "leaf.pem: good" in _openssl_ocsp(tmp_path, live_server, good)
    answer = _openssl_ocsp(tmp_path, live_server, bad)
    assert "leaf.pem: revoked" in answer and "Reason: keyCompromise" in answer


@pytest.mark.django_db(transaction=True)
def test_a_rotated_ca_still_answers_for_the_certificates_it_signed(
        acme_sensor: Any, live_server: Any, tmp_path: Path) -> None:
    old = issue_from_csr(acme_sensor, csr_pem())
    rotate_issuing_ca(acme_sensor.tenant)
    revoke_certificate(old.certificate, "superseded")
    assert "leaf.pem: revoked" in _openssl_ocsp(tmp_path, live_server, old)


def _request(cert: x509.Certificate, issuer: x509.Certificate, algorithm: Any = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    return builder.add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False).build().public_bytes(
        serialization.Encoding.DER)


def _post(client: Any, der: bytes) -> ocsp.OCSPResponse:
    response = client.post("/pki/ocsp", data=der, content_type="application/ocsp-request")
    assert response.status_code == 200 and response["Content-Type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(response.content)


@pytest.mark.django_db
def test_the_get_form_and_sha256_ids_are_answered_and_signed_by_the_issuing_ca(acme_sensor: Any, client: Any) -> None:
    issued = issue_from_csr(acme_sensor, csr_pem())
    leaf, ca = load_cert(issued.certificate_pem), load_cert(issued.chain_pem)
    der = _request(leaf, ca, hashes.SHA256())
    response = client.get("/pki/ocsp/" + quote(base64.b64encode(der).decode(), safe=""))
    answer = ocsp.load_der_ocsp_response(response.content)
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert answer.serial_number == leaf.serial_number
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"0123456789abcdef"
    ca.public_key().verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm))


@pytest.mark.django_db
def test_an_unknown_serial_of_a_known_ca_is_answered_unknown(acme_sensor: Any, client: Any) -> None:
    issued = issue_from_csr(acme_sensor, csr_pem())
    leaf, ca = load_cert(issued.certificate_pem), load_cert(issued.chain_pem)
    probe = ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, hashes.SHA1()).build()
    unknown = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        probe.issuer_name_hash, probe.issuer_key_hash, 12345, hashes.SHA1()).build()
    answer = _post(client, unknown.public_bytes(serialization.Encoding.DER))
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


@pytest.mark.django_db
def test_another_tenants_ca_does_not_answer_for_this_tenants_certificate(
        acme_sensor: Any, globex_sensor: Any, client: Any) -> None:
    acme_cert = load_cert(issue_from_csr(acme_sensor, csr_pem()).certificate_pem)
    globex = issue_from_csr(globex_sensor, csr_pem())
    probe = ocsp.OCSPRequestBuilder().add_certificate(
        load_cert(globex.certificate_pem), load_cert(globex.chain_pem), hashes.SHA1()).build()
    # Asking globex's CA about acme's serial: globex never issued it.
    question = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        probe.issuer_name_hash, probe.issuer_key_hash, acme_cert.serial_number, hashes.SHA1()).build()
    answer = _post(client, question.public_bytes(serialization.Encoding.DER))
    assert answer.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    # The mismatched pair (acme's issuer name, globex's key) names no CA at all.
    mixed = _post(client, _request(acme_cert, load_cert(globex.chain_pem)))
    assert mixed.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


@pytest.mark.django_db
def test_a_foreign_issuer_is_unauthorized_and_garbage_is_malformed(acme_sensor: Any, client: Any) -> None:
    ensure_root_ca()
    foreign = ocsp.OCSPRequestBuilder().add_certificate_by_hash(b"\x01" * 20, b"\x02" * 20, 7, hashes.SHA1()).build()
    answer = _post(client, foreign.public_bytes(serialization.Encoding.DER))
    assert answer.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert _post(client, b"not an ocsp request").response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert client.get("/pki/ocsp/%%%not-base64").status_code == 400
    too_big = client.post("/pki/ocsp", data=b"\x30" * 100_000, content_type="application/ocsp-request")
    assert too_big.status_code == 413


@pytest.mark.django_db
def test_a_missing_ca_key_gives_an_ocsp_internal_error_not_a_crash(
        acme_sensor: Any, client: Any, pki_data_dir: Path) -> None:
    issued = issue_from_csr(acme_sensor, csr_pem())
    (pki_data_dir / "pki" / "ca" / issued.certificate.issuer.key_file).unlink()
    answer = _post(client, _request(load_cert(issued.certificate_pem), load_cert(issued.chain_pem)))
    assert answer.response_status == ocsp.OCSPResponseStatus.INTERNAL_ERROR
    crl = client.get(f"/pki/crl/{issued.certificate.issuer_id}.crl")
    assert crl.status_code == 503 and b"restore ROOST_DATA_DIR/pki" in crl.content
