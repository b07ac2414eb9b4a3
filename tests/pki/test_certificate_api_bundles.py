"""Issuing through the API: JSON, the raw .p12 and the zip of PEM files by content negotiation,
and precise 4xx answers (never a 500, never a certificate nobody receives) for bad input."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from pki.models import Certificate

from .helpers import csr_pem, load_cert, openssl_verify, p256

URL = "/api/v1/tenants/acme/devices/sensor-1/certificates/"
P12 = "application/x-pkcs12"
ZIP = "application/zip"


@pytest.fixture
def operator(acme_sensor: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme_sensor.tenant, "operator"))


def _issue(client: Any, body: dict[str, Any], accept: str | None = None) -> Any:
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    return client.post(URL, body, format="json", **headers)


def _public(key_or_cert: Any) -> bytes:
    return key_or_cert.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def _zip(response: Any) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


# JSON ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_json_is_the_default_and_carries_the_generated_key_and_its_pkcs12(operator: Any) -> None:
    response = _issue(operator, {"days": 30})
    assert response.status_code == 201 and response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    key = serialization.load_pem_private_key(body["private_key"].encode(), None)
    assert _public(key) == _public(load_cert(body["certificate"]))
    assert body["pkcs12_passphrase"] and body["status"] == "active" and body["device"] == "sensor-1"


@pytest.mark.django_db
def test_the_location_header_names_the_new_certificate(operator: Any) -> None:
    response = _issue(operator, {})
    serial = response.json()["serial"]
    assert response["Location"].endswith(f"/api/v1/tenants/acme/certificates/{serial}/")
    assert operator.get(response["Location"]).json()["serial"] == serial


# PKCS#12 -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_pkcs12_download_opens_with_the_passphrase_from_its_header(operator: Any) -> None:
    response = _issue(operator, {}, accept=P12)
    assert response.status_code == 201 and response["Content-Type"] == P12
    assert response["Content-Disposition"] == 'attachment; filename="sensor-1.p12"'
    assert response["Cache-Control"] == "no-store"
    key, cert, extra = pkcs12.load_key_and_certificates(response.content,
                                                        response["X-PKCS12-Passphrase"].encode())
    assert cert is not None and key is not None and _public(key) == _public(cert)
    assert cert.subject.rfc4514_string() == "CN=sensor-1,O=acme"
    assert [c.subject for c in extra] == [cert.issuer]
    assert Certificate.objects.get().serial == format(cert.serial_number, "x")


@pytest.mark.django_db
def test_a_pkcs12_with_the_callers_passphrase_does_not_echo_it(operator: Any) -> None:
    response = _issue(operator, {"passphrase": "correct horse battery"}, accept=P12)
    assert response.status_code == 201 and "X-PKCS12-Passphrase" not in response
    key, cert, _ = pkcs12.load_key_and_certificates(response.content, b"correct horse battery")
    assert key is not None and cert is not None
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(response.content, b"wrong passphrase")


@pytest.mark.django_db
def test_a_pkcs12_for_a_csr_is_not_acceptable_and_issues_nothing(operator: Any) -> None:
    response = _issue(operator, {"csr": csr_pem()}, accept=P12)
    assert response.status_code == 406 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "not_acceptable" and "CSR" in body["message"]
    assert not Certificate.objects.exists()


@pytest.mark.django_db
def test_the_format_query_parameter_selects_the_pkcs12_too(operator: Any) -> None:
    response = operator.post(URL + "?format=p12", {}, format="json")
    assert response.status_code == 201 and response["Content-Type"] == P12
    assert pkcs12.load_key_and_certificates(response.content, response["X-PKCS12-Passphrase"].encode())[0]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["", "pdf", "api"])
def test_an_unknown_format_parameter_is_a_400_on_that_parameter_and_issues_nothing(operator: Any,
                                                                                   value: str) -> None:
    response = operator.post(f"{URL}?format={value}", {}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "format"
    assert not Certificate.objects.exists()


# Zip of PEM files ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_zip_bundle_holds_the_files_of_roost_cert_issue_and_they_verify(operator: Any, tmp_path: Path) -> None:
    response = _issue(operator, {}, accept=ZIP)
    assert response.status_code == 201 and response["Content-Type"] == ZIP
    assert response["Content-Disposition"] == 'attachment; filename="sensor-1.zip"'
    files = _zip(response)
    assert set(files) == {"ca.pem", "device.pem", "device.key", "chain.pem"}
    leaf = load_cert(files["device.pem"])
    assert files["device.pem"].decode() == leaf.public_bytes(serialization.Encoding.PEM).decode() + \
        files["chain.pem"].decode()
    key = serialization.load_pem_private_key(files["device.key"], None)
    assert _public(key) == _public(leaf)
    # A device presents device.pem (leaf + issuing CA) and trusts ca.pem alone.
    verified = openssl_verify(tmp_path, root=files["ca.pem"].decode(), leaf=files["device.pem"].decode(),
                              untrusted=files["device.pem"].decode())
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.django_db
def test_the_zipped_key_is_readable_by_its_owner_only(operator: Any) -> None:
    with zipfile.ZipFile(io.BytesIO(_issue(operator, {}, accept=ZIP).content)) as archive:
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert modes["device.key"] == 0o600 and modes["ca.pem"] == 0o644


@pytest.mark.django_db
def test_a_zip_for_a_csr_has_no_key_and_certifies_the_csrs_key(operator: Any, tmp_path: Path) -> None:
    key = p256()
    response = _issue(operator, {"csr": csr_pem(key)}, accept=ZIP)
    assert response.status_code == 201
    files = _zip(response)
    assert set(files) == {"ca.pem", "device.pem", "chain.pem"}
    assert _public(load_cert(files["device.pem"])) == _public(key)
    verified = openssl_verify(tmp_path, root=files["ca.pem"].decode(), leaf=files["device.pem"].decode(),
                              untrusted=files["chain.pem"].decode())
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.django_db
def test_every_download_is_a_new_certificate_with_a_new_key(operator: Any) -> None:
    first, second = (_zip(_issue(operator, {}, accept=ZIP)) for _ in range(2))
    assert first["device.key"] != second["device.key"]
    assert load_cert(first["device.pem"]).serial_number != load_cert(second["device.pem"]).serial_number
    assert Certificate.objects.count() == 2
    assert not any(b"PRIVATE KEY" in c.certificate_pem.encode() for c in Certificate.objects.all())


# Refusals ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["application/pdf", "text/csv", "nonsense"])
def test_an_accept_header_the_endpoint_cannot_answer_gets_a_406_and_issues_nothing(operator: Any,
                                                                                   accept: str) -> None:
    response = _issue(operator, {}, accept=accept)
    assert response.status_code == 406 and response.json()["code"] == "not_acceptable"
    assert not Certificate.objects.exists()


@pytest.mark.django_db
def test_the_list_is_json_only(operator: Any) -> None:
    assert operator.get(URL, HTTP_ACCEPT=ZIP).status_code == 406
    assert operator.get(URL, HTTP_ACCEPT=P12).status_code == 406


@pytest.mark.django_db
def test_a_bad_csr_asked_as_a_zip_gets_a_json_error_on_the_csr_field(operator: Any) -> None:
    response = _issue(operator, {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                        "-----END CERTIFICATE REQUEST-----\n"}, accept=ZIP)
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    body = response.json()
    assert (body["field"], body["code"]) == ("csr", "invalid_csr")
    assert "could not be parsed" in body["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field", "code"), [
    ({"days": 0}, "days", "min_value"),
    ({"days": 3651}, "days", "max_value"),
    ({"days": "soon"}, "days", "invalid"),
    ({"days": True}, "days", "invalid"),
    ({"csr": 42}, "csr", "invalid"),
    ({"csr": ""}, "csr", "blank"),
    ({"passphrase": "short"}, "passphrase", "min_length"),
    ({"csr": csr_pem(), "passphrase": "a long passphrase"}, "passphrase", "passphrase_without_key"),
])
def test_bad_issue_requests_name_the_field_at_fault(operator: Any, body: dict[str, Any], field: str,
                                                    code: str) -> None:
    response = _issue(operator, body)
    assert response.status_code == 400, response.content
    assert (response.json()["field"], response.json()["code"]) == (field, code)
    assert not Certificate.objects.exists()


@pytest.mark.django_db
def test_a_body_that_is_not_an_object_gets_a_400(operator: Any) -> None:
    response = operator.post(URL, b"[1, 2]", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"


@pytest.mark.django_db
def test_an_oversized_body_is_refused_before_it_is_read(operator: Any) -> None:
    response = operator.post(URL, {"csr": "A" * 64 * 1024}, format="json")
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"


@pytest.mark.django_db
def test_a_certificate_for_an_unknown_device_is_a_404(operator: Any) -> None:
    response = operator.post("/api/v1/tenants/acme/devices/ghost/certificates/", {}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "device_not_found"
