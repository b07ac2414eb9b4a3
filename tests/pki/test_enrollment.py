"""Fleet provisioning by claim: token + name + CSR at POST /api/v1/enroll."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from devices.models import AuditEvent, Device
from devices.services import create_device, create_group
from pki.enrollment import create_token, parse_duration
from pki.errors import PkiError
from pki.models import Certificate, EnrollmentToken

from .helpers import csr_pem, csr_with_swapped_key, load_cert, openssl_verify

URL = "/api/v1/enroll"


def _enroll(client: Client, token: str, name: str, csr: str | None = None) -> Any:
    body = {"token": token, "name": name, "csr": csr if csr is not None else csr_pem(cn=name)}
    return client.post(URL, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def device_client() -> Client:
    # Devices have no session; CSRF checks on would refuse any view that still relied on one.
    return Client(enforce_csrf_checks=True)


@pytest.mark.django_db
def test_a_device_enrolls_end_to_end_and_lands_in_the_tokens_group_with_the_template(
        acme: Any, device_client: Client, tmp_path: Path) -> None:
    group = create_group(acme, "field")
    new = create_token(acme, uses=5, group=group, attributes={"site": "north", "fw": "1.2"})
    response = _enroll(device_client, new.secret, "meter-001")
    assert response.status_code == 201, response.content
    body = response.json()
    device = Device.objects.get(tenant=acme, name="meter-001")
    assert device.group == group and device.attributes == {"site": "north", "fw": "1.2"}
    cert = load_cert(body["certificate"])
    assert cert.subject.rfc4514_string() == "CN=meter-001,O=acme"
    verified = openssl_verify(tmp_path, root=body["ca"], untrusted=body["chain"], leaf=body["certificate"])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert Certificate.objects.get(fingerprint=body["fingerprint"]).device == device
    token = EnrollmentToken.objects.get(pk=new.token.pk)
    assert token.uses == 1
    assert AuditEvent.objects.filter(action="enrollment.use", tenant=acme).count() == 1


@pytest.mark.django_db
def test_tokens_are_stored_only_as_their_sha256(acme: Any) -> None:
    new = create_token(acme)
    row = EnrollmentToken.objects.get(pk=new.token.pk)
    assert row.token_hash == hashlib.sha256(new.secret.encode()).hexdigest()
    assert not any(new.secret in str(value) for value in EnrollmentToken.objects.values().get(pk=row.pk).values())


@pytest.mark.django_db
def test_a_single_use_token_is_refused_the_second_time(acme: Any, device_client: Client) -> None:
    new = create_token(acme, uses=1)
    assert _enroll(device_client, new.secret, "meter-001").status_code == 201
    second = _enroll(device_client, new.secret, "meter-002")
    assert second.status_code == 403 and second.json()["code"] == "token_used_up"
    assert not Device.objects.filter(name="meter-002").exists()
    assert AuditEvent.objects.filter(action="enrollment.refuse", tenant=acme).count() == 1


@pytest.mark.django_db
def test_an_expired_token_is_refused(acme: Any, device_client: Client) -> None:
    new = create_token(acme)
    EnrollmentToken.objects.filter(pk=new.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _enroll(device_client, new.secret, "meter-001")
    assert response.status_code == 403 and response.json()["code"] == "token_expired"


@pytest.mark.django_db
def test_a_disabled_tenant_accepts_no_enrollment(acme: Any, device_client: Client) -> None:
    from devices.services import set_tenant_enabled

    new = create_token(acme)
    set_tenant_enabled(acme, False)
    response = _enroll(device_client, new.secret, "meter-001")
    assert response.status_code == 403 and response.json()["code"] == "tenant_disabled"
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_an_unknown_token_is_refused(acme: Any, device_client: Client) -> None:
    response = _enroll(device_client, "roost_enr_made-up", "meter-001")
    assert response.status_code == 403 and not Device.objects.exists()


@pytest.mark.django_db
def test_the_claim_is_decided_by_the_database_not_by_a_stale_copy_of_the_token(acme: Any) -> None:
    from pki.enrollment import _claim

    new = create_token(acme, uses=1)
    stale = EnrollmentToken.objects.get(pk=new.token.pk)
    _claim(EnrollmentToken.objects.get(pk=new.token.pk))
    assert stale.uses == 0  # this copy still believes a use is left
    with pytest.raises(PkiError) as refused:
        _claim(stale)
    assert refused.value.status == 403
    assert EnrollmentToken.objects.get(pk=new.token.pk).uses == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_enrollments_cannot_overuse_a_single_use_token(acme: Any) -> None:
    new = create_token(acme, uses=1)
    csrs = [csr_pem(cn=f"racer-{i}") for i in range(8)]
    barrier = threading.Barrier(len(csrs))
    codes: list[int] = []

    def attempt(i: int) -> None:
        try:
            barrier.wait(5)
            codes.append(_enroll(Client(), new.secret, f"racer-{i}", csrs[i]).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(csrs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes) == [201] + [403] * (len(csrs) - 1)
    assert Device.objects.filter(tenant=acme).count() == 1
    assert EnrollmentToken.objects.get(pk=new.token.pk).uses == 1


@pytest.mark.django_db
def test_a_failed_enrollment_leaves_no_device_and_keeps_the_token_use(acme: Any, device_client: Client) -> None:
    new = create_token(acme, uses=1)
    create_device(acme, "taken")
    conflict = _enroll(device_client, new.secret, "taken")
    assert conflict.status_code == 409
    bad_csr = _enroll(device_client, new.secret, "meter-001", csr_with_swapped_key())
    assert bad_csr.status_code == 400 and "signature does not match" in bad_csr.json()["message"]
    assert not Device.objects.filter(name="meter-001").exists()
    assert EnrollmentToken.objects.get(pk=new.token.pk).uses == 0
    assert _enroll(device_client, new.secret, "meter-001").status_code == 201


@pytest.mark.django_db
def test_a_failure_after_the_device_is_created_rolls_the_device_back(acme: Any, device_client: Client) -> None:
    from pki.issuance import issue_from_csr

    other = create_device(acme, "holder")
    key_owner_csr = csr_pem()
    issue_from_csr(other, key_owner_csr)
    new = create_token(acme, uses=1)
    # Same key as `holder`: refused only after the device row was written inside the transaction.
    response = _enroll(device_client, new.secret, "meter-001", key_owner_csr)
    assert response.status_code == 409 and response.json()["code"] == "public_key_in_use"
    assert not Device.objects.filter(name="meter-001").exists()
    assert EnrollmentToken.objects.get(pk=new.token.pk).uses == 0


@pytest.mark.django_db
def test_an_invalid_device_name_is_refused_with_the_allowed_characters(acme: Any, device_client: Client) -> None:
    new = create_token(acme)
    response = _enroll(device_client, new.secret, "bad name/#")
    assert response.status_code == 400
    assert "letters, digits and . _ : -" in response.json()["message"]


@pytest.mark.django_db
def test_an_oversized_enrollment_is_refused_before_parsing(acme: Any, device_client: Client) -> None:
    new = create_token(acme)
    response = _enroll(device_client, new.secret, "meter-001", csr_pem() + "A" * 1024 * 1024)
    assert response.status_code == 413
    assert EnrollmentToken.objects.get(pk=new.token.pk).uses == 0


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"token": 5, "name": "x", "csr": "y"}', b"{}"])
def test_malformed_enrollment_bodies_get_a_400(acme: Any, device_client: Client, body: bytes) -> None:
    response = device_client.post(URL, data=body, content_type="application/json")
    assert response.status_code == 400


def test_durations_read_like_the_cli_promises() -> None:
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("1d12h") == timedelta(hours=36)
    for bad in ("", "soon", "0h", "5x", "-3d", "24h garbage"):
        with pytest.raises(PkiError):
            parse_duration(bad)


@pytest.mark.django_db
def test_enrollment_is_rate_limited_per_client_address(acme: Any, device_client: Client, monkeypatch: Any) -> None:
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"enroll": "3/min"})
    new = create_token(acme, uses=10)
    codes = [_enroll(device_client, new.secret, f"meter-{i}").status_code for i in range(3)]
    assert codes == [201, 201, 201]
    refused = _enroll(device_client, new.secret, "meter-3")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    # A spoofed X-Forwarded-For does not make a new client (ROOST_NUM_PROXIES=0).
    body = json.dumps({"token": new.secret, "name": "meter-4", "csr": csr_pem(cn="meter-4")})
    spoofed = device_client.post(URL, data=body, content_type="application/json", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert spoofed.status_code == 429
    other = Client(REMOTE_ADDR="198.51.100.7")
    assert _enroll(other, new.secret, "meter-5").status_code == 201
    assert EnrollmentToken.objects.get(pk=new.token.pk).uses == 4
