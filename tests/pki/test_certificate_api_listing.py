"""The tenant's certificates: filters, ordering, pages, lookups by serial as openssl prints it,
revocation with RFC 5280 reasons, and one serial format in the API, the CLI and the admin."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from devices.services import create_device
from pki.issuance import issue_from_csr
from pki.models import Certificate, CertificateStatus
from pki.revocation import revoke_certificate

from .helpers import csr_pem, openssl, write

URL = "/api/v1/tenants/acme/certificates/"


@pytest.fixture
def viewer(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, "viewer"))


@pytest.fixture
def operator(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, "operator"))


def _issue(device: Any, *, days_left: float | None = None) -> Certificate:
    cert = issue_from_csr(device, csr_pem()).certificate
    if days_left is not None:
        Certificate.objects.filter(pk=cert.pk).update(not_after=timezone.now() + timedelta(days=days_left))
        cert.refresh_from_db()
    return cert


def _serials(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [c["serial"] for c in response.json()["results"]]


def _openssl_serial(cert: Certificate, tmp_path: Path) -> str:
    """What `openssl x509 -serial -noout` prints: serial=<UPPER HEX, even length>."""
    result = openssl("x509", "-serial", "-noout", "-in", str(write(tmp_path / "c.pem", cert.certificate_pem)))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _leading_zero_cert(device: Any) -> Certificate:
    """A certificate whose serial openssl prints with a leading zero (about 1 in 16 are)."""
    for _ in range(200):
        cert = _issue(device)
        if len(cert.serial) % 2:
            return cert
    raise AssertionError("no odd-length serial in 200 issuances")


# Serial lookups --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_certificate_is_found_by_the_serial_openssl_prints(acme: Any, viewer: Any, tmp_path: Path) -> None:
    cert = _leading_zero_cert(create_device(acme, "sensor-1"))
    printed = _openssl_serial(cert, tmp_path)
    assert printed.startswith("serial=0") and printed[len("serial="):].isupper()
    for form in (printed, printed[len("serial="):], cert.serial, cert.serial.upper()):
        response = viewer.get(f"{URL}{form}/")
        assert response.status_code == 200, (form, response.content)
        assert response.json()["serial"] == cert.serial


@pytest.mark.django_db
def test_a_serial_with_colons_as_browsers_show_it_is_found(acme: Any, viewer: Any) -> None:
    cert = _issue(create_device(acme, "sensor-1"))
    padded = cert.serial.zfill(len(cert.serial) + len(cert.serial) % 2).upper()
    colons = ":".join(padded[i:i + 2] for i in range(0, len(padded), 2))
    assert viewer.get(f"{URL}{colons}/").json()["serial"] == cert.serial


@pytest.mark.django_db
def test_an_unknown_serial_is_a_404_and_a_non_hex_one_a_400(acme: Any, viewer: Any) -> None:
    missing = viewer.get(f"{URL}DEADBEEF/")
    assert missing.status_code == 404 and missing.json()["code"] == "certificate_not_found"
    garbage = viewer.get(f"{URL}not-a-serial/")
    assert garbage.status_code == 400 and garbage.json()["code"] == "invalid_serial"


@pytest.mark.django_db
def test_another_tenants_certificate_is_not_found_by_serial(acme: Any, globex: Any, viewer: Any) -> None:
    theirs = _issue(create_device(globex, "sensor-1"))
    assert viewer.get(f"{URL}{theirs.serial}/").status_code == 404
    assert _serials(viewer.get(URL)) == []


@pytest.mark.django_db
def test_the_api_the_cli_and_the_admin_show_one_serial_format(acme: Any, viewer: Any, admin_client: Any,
                                                              tmp_path: Path) -> None:
    cert = _leading_zero_cert(create_device(acme, "sensor-1"))
    stored = cert.serial
    assert stored == stored.lower() and not stored.startswith("0")
    assert viewer.get(f"{URL}{stored}/").json()["serial"] == stored
    out = io.StringIO()
    call_command("cert", "list", "--tenant", "acme", stdout=out)
    assert stored in out.getvalue().split()
    page = admin_client.get("/admin/pki/certificate/").content.decode()
    assert f">{stored}<" in page
    printed = _openssl_serial(cert, tmp_path)[len("serial="):]
    assert printed not in out.getvalue() and printed not in page


# Filters, ordering, pages ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_status_filter_uses_the_effective_status(acme: Any, viewer: Any) -> None:
    device = create_device(acme, "sensor-1")
    active = _issue(device)
    lapsed = _issue(device, days_left=-1)  # still stored as active: housekeeping has not run
    revoked = revoke_certificate(_issue(device), "superseded")
    assert Certificate.objects.get(pk=lapsed.pk).status == CertificateStatus.ACTIVE
    assert _serials(viewer.get(URL, {"status": "active"})) == [active.serial]
    assert _serials(viewer.get(URL, {"status": "expired"})) == [lapsed.serial]
    assert _serials(viewer.get(URL, {"status": "revoked"})) == [revoked.serial]
    assert viewer.get(f"{URL}{lapsed.serial}/").json()["status"] == "expired"


@pytest.mark.django_db
def test_expiring_within_lists_active_certificates_ending_in_that_many_days(acme: Any, viewer: Any) -> None:
    device = create_device(acme, "sensor-1")
    soon = _issue(device, days_left=5)
    _issue(device, days_left=40)
    _issue(device, days_left=-1)
    revoke_certificate(_issue(device, days_left=3), "superseded")
    assert _serials(viewer.get(URL, {"expiring_within": 7})) == [soon.serial]
    assert len(_serials(viewer.get(URL, {"expiring_within": 60}))) == 2
    assert _serials(viewer.get(URL, {"expiring_within": 0})) == []


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["-1", "soon", "1.5", "36501"])
def test_a_bad_expiring_within_is_a_400_on_that_parameter(acme: Any, viewer: Any, value: str) -> None:
    response = viewer.get(URL, {"expiring_within": value})
    assert response.status_code == 400 and response.json()["field"] == "expiring_within"


@pytest.mark.django_db
def test_the_device_filter_and_the_device_listing_agree(acme: Any, viewer: Any) -> None:
    one, two = create_device(acme, "sensor-1"), create_device(acme, "sensor.2")
    mine = _issue(two)
    _issue(one)
    assert _serials(viewer.get(URL, {"device": "sensor.2"})) == [mine.serial]
    assert _serials(viewer.get("/api/v1/tenants/acme/devices/sensor.2/certificates/")) == [mine.serial]


@pytest.mark.django_db
def test_the_newest_come_first_unless_ordered_by_not_after(acme: Any, viewer: Any) -> None:
    device = create_device(acme, "sensor-1")
    late = _issue(device, days_left=50)
    early = _issue(device, days_left=10)
    middle = _issue(device, days_left=30)
    assert _serials(viewer.get(URL)) == [middle.serial, early.serial, late.serial]
    assert _serials(viewer.get(URL, {"ordering": "not_after"})) == [early.serial, middle.serial, late.serial]
    assert _serials(viewer.get(URL, {"ordering": "-not_after"})) == [late.serial, middle.serial, early.serial]


@pytest.mark.django_db
def test_pages_follow_next_links_without_gaps_or_repeats(acme: Any, viewer: Any) -> None:
    device = create_device(acme, "sensor-1")
    issued = [_issue(device).serial for _ in range(5)]
    seen: list[str] = []
    url: str | None = URL + "?limit=2"
    while url:
        page = viewer.get(url).json()
        assert len(page["results"]) <= 2
        seen += [c["serial"] for c in page["results"]]
        url = page["next"]
    assert seen == list(reversed(issued))


@pytest.mark.django_db
def test_pages_ordered_by_not_after_hold_every_certificate_once_despite_a_bulk_imports_ties(
        acme: Any, viewer: Any) -> None:
    from pki.ca import active_issuing_ca

    # As after a bulk import: more certificates with one not_after second than a page holds
    # (rows only: what is listed here never needs a signature).
    ca, now = active_issuing_ca(acme), timezone.now()
    Certificate.objects.bulk_create(Certificate(
        tenant=acme, device_name=f"bulk-{i}", issuer=ca, serial=format(0x1000 + i, "x"), fingerprint=f"{i:064x}",
        public_key_sha256=f"{i:064x}", subject=f"CN=bulk-{i}", not_before=now, not_after=now + timedelta(days=30),
        issued_by="test", certificate_pem="") for i in range(1205))
    Certificate.objects.update(created=now)
    seen: list[str] = []
    url: str | None = URL + "?ordering=not_after&limit=600"
    while url:
        response = viewer.get(url)
        assert response.status_code == 200, response.content
        seen += [c["serial"] for c in response.json()["results"]]
        url = response.json()["next"]
    assert len(seen) == len(set(seen)) == 1205


# Revocation ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_operator_revokes_by_the_openssl_serial_with_a_reason(acme: Any, operator: Any, tmp_path: Path) -> None:
    cert = _issue(create_device(acme, "sensor-1"))
    response = operator.post(f"{URL}{_openssl_serial(cert, tmp_path)}/revoke/", {"reason": "keyCompromise"},
                             format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["serial"], body["status"], body["revocation_reason"]) == (cert.serial, "revoked", "keyCompromise")
    assert body["revoked_at"] is not None


@pytest.mark.django_db
def test_a_revocation_without_a_reason_is_unspecified(acme: Any, operator: Any) -> None:
    cert = _issue(create_device(acme, "sensor-1"))
    response = operator.post(f"{URL}{cert.serial}/revoke")
    assert response.status_code == 200 and response.json()["revocation_reason"] == "unspecified"


@pytest.mark.django_db
def test_revoking_twice_is_a_409(acme: Any, operator: Any) -> None:
    cert = _issue(create_device(acme, "sensor-1"))
    assert operator.post(f"{URL}{cert.serial}/revoke/", {"reason": "superseded"}, format="json").status_code == 200
    again = operator.post(f"{URL}{cert.serial}/revoke/", {"reason": "superseded"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "already_revoked"
    assert Certificate.objects.get(pk=cert.pk).revocation_reason == "superseded"


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["bored", "certificateHold", "removeFromCRL", 7, ""])
def test_an_unknown_reason_is_a_400_on_the_reason_field_and_revokes_nothing(acme: Any, operator: Any,
                                                                             reason: Any) -> None:
    cert = _issue(create_device(acme, "sensor-1"))
    response = operator.post(f"{URL}{cert.serial}/revoke/", {"reason": reason}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "reason" and "keyCompromise" in body["message"]
    assert Certificate.objects.get(pk=cert.pk).status == CertificateStatus.ACTIVE


@pytest.mark.django_db
def test_a_revoked_certificate_shows_its_reason_in_the_list(acme: Any, viewer: Any) -> None:
    cert = revoke_certificate(_issue(create_device(acme, "sensor-1")), "cessationOfOperation")
    listed = viewer.get(URL).json()["results"][0]
    assert (listed["serial"], listed["status"], listed["revocation_reason"]) == \
        (cert.serial, "revoked", "cessationOfOperation")
