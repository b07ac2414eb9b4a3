"""The tenant-scoped certificate API: personas per tenant, every lookup with its negative case."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from django.test import Client

from devices.models import Membership, Role
from pki.issuance import issue_from_csr
from pki.models import Certificate, EnrollmentToken

from .helpers import csr_pem, csr_with_swapped_key, greedy_csr_pem, load_cert


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _post(client: Client, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, data=json.dumps(body), content_type="application/json")


DEVICE_URL = "/api/v1/tenants/acme/devices/sensor-1/certificates"


@pytest.mark.django_db
def test_an_owner_issues_a_certificate_from_a_csr(alice: Any, acme_sensor: Any) -> None:
    response = _post(_client(alice), DEVICE_URL, {"csr": greedy_csr_pem(), "days": 30})
    assert response.status_code == 201, response.content
    body = response.json()
    assert load_cert(body["certificate"]).subject.rfc4514_string() == "CN=sensor-1,O=acme"
    assert "private_key" not in body
    assert Certificate.objects.get(serial=body["serial"]).issued_by == "alice"


@pytest.mark.django_db
def test_an_owner_gets_a_generated_key_once_with_a_pkcs12(alice: Any, acme_sensor: Any) -> None:
    body = _post(_client(alice), DEVICE_URL, {}).json()
    assert body["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    p12 = base64.b64decode(body["pkcs12"])
    assert pkcs12.load_key_and_certificates(p12, body["pkcs12_passphrase"].encode())[1] is not None
    listed = _client(alice).get(DEVICE_URL).json()["results"]
    assert "private_key" not in json.dumps(listed)


@pytest.mark.django_db
def test_a_viewer_may_list_but_not_issue_or_revoke(bob: Any, acme_sensor: Any) -> None:
    cert = issue_from_csr(acme_sensor, csr_pem()).certificate
    client = _client(bob)
    assert client.get(DEVICE_URL).status_code == 200
    assert _post(client, DEVICE_URL, {"csr": csr_pem()}).status_code == 403
    revoke = _post(client, f"/api/v1/tenants/acme/certificates/{cert.serial}/revoke", {"reason": "keyCompromise"})
    assert revoke.status_code == 403


@pytest.mark.django_db
def test_another_tenants_member_finds_nothing(charlie: Any, acme_sensor: Any) -> None:
    cert = issue_from_csr(acme_sensor, csr_pem()).certificate
    client = _client(charlie)
    assert client.get(DEVICE_URL).status_code == 404
    assert _post(client, DEVICE_URL, {"csr": csr_pem()}).status_code == 404
    assert client.get("/api/v1/tenants/acme/certificates").status_code == 404
    revoke = _post(client, f"/api/v1/tenants/acme/certificates/{cert.serial}/revoke", {})
    assert revoke.status_code == 404
    # Through charlie's own tenant, acme's certificate does not exist either.
    other = _post(client, f"/api/v1/tenants/globex/certificates/{cert.serial}/revoke", {})
    assert other.status_code == 404


@pytest.mark.django_db
def test_a_device_of_another_tenant_is_not_found(alice: Any, globex_sensor: Any, acme: Any) -> None:
    Membership.objects.create(user=alice, tenant=globex_sensor.tenant, role=Role.VIEWER)
    response = _post(_client(alice), "/api/v1/tenants/acme/devices/sensor-1/certificates", {"csr": csr_pem()})
    assert response.status_code == 404 and response.json()["code"] == "device_not_found"


@pytest.mark.django_db
def test_an_invalid_device_name_gets_a_400_with_the_allowed_characters(alice: Any, acme: Any) -> None:
    response = _post(_client(alice), "/api/v1/tenants/acme/devices/-bad%20name/certificates", {"csr": csr_pem()})
    assert response.status_code == 400
    assert "letters, digits and . _ : -" in response.json()["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(("csr", "status", "words"), [
    (csr_with_swapped_key, 400, "signature does not match"),
    (lambda: csr_pem() * 2, 400, "exactly one CSR"),
    (lambda: "garbage", 400, "could not be parsed"),
    (lambda: csr_pem() + "A" * 20000, 413, "at most"),
])
def test_bad_csrs_get_a_clear_error_never_a_500(alice: Any, acme_sensor: Any, csr: Any, status: int,
                                                words: str) -> None:
    response = _post(_client(alice), DEVICE_URL, {"csr": csr()})
    assert response.status_code == status
    body = response.json()
    assert words in body["message"] and body["field"] == "csr"


@pytest.mark.django_db
def test_the_same_key_on_a_second_device_is_a_409(alice: Any, acme_sensor: Any) -> None:
    from devices.services import create_device

    create_device(acme_sensor.tenant, "sensor-2")
    csr = csr_pem()
    assert _post(_client(alice), DEVICE_URL, {"csr": csr}).status_code == 201
    again = _post(_client(alice), "/api/v1/tenants/acme/devices/sensor-2/certificates", {"csr": csr})
    assert again.status_code == 409


@pytest.mark.django_db
def test_an_operator_revokes_and_the_listing_filters_by_status(alice: Any, acme_sensor: Any) -> None:
    keep = issue_from_csr(acme_sensor, csr_pem()).certificate
    gone = issue_from_csr(acme_sensor, csr_pem()).certificate
    client = _client(alice)
    response = _post(client, f"/api/v1/tenants/acme/certificates/{gone.serial.upper()}/revoke",
                     {"reason": "keyCompromise"})
    assert response.status_code == 200 and response.json()["revocation_reason"] == "keyCompromise"
    assert _post(client, f"/api/v1/tenants/acme/certificates/{gone.serial}/revoke", {}).status_code == 409
    bad_reason = _post(client, f"/api/v1/tenants/acme/certificates/{keep.serial}/revoke", {"reason": "bored"})
    assert bad_reason.status_code == 400 and bad_reason.json()["field"] == "reason"
    revoked = client.get("/api/v1/tenants/acme/certificates?status=revoked").json()["results"]
    active = client.get("/api/v1/tenants/acme/certificates?status=active").json()["results"]
    assert [c["serial"] for c in revoked] == [gone.serial]
    assert [c["serial"] for c in active] == [keep.serial]
    weird = client.get("/api/v1/tenants/acme/certificates?status=weird")
    assert weird.status_code == 400 and weird.json()["field"] == "status"


@pytest.mark.django_db
def test_an_admin_creates_an_enrollment_token_shown_once(alice: Any, bob: Any, acme: Any) -> None:
    response = _post(_client(alice), "/api/v1/tenants/acme/enrollment-tokens", {"uses": 3, "expires": "7d"})
    assert response.status_code == 201
    secret = response.json()["token"]
    token = EnrollmentToken.objects.get(tenant=acme)
    assert token.max_uses == 3 and secret.startswith(token.prefix) and token.token_hash != secret
    assert _post(_client(bob), "/api/v1/tenants/acme/enrollment-tokens", {}).status_code == 403
    missing_group = _post(_client(alice), "/api/v1/tenants/acme/enrollment-tokens", {"group": "nope"})
    assert missing_group.status_code == 400 and missing_group.json()["field"] == "group"
    assert "No group 'nope'" in missing_group.json()["message"]


@pytest.mark.django_db
def test_anonymous_callers_are_refused(acme_sensor: Any) -> None:
    response = Client().get(DEVICE_URL)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
