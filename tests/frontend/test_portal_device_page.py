"""The device page: presence, connection log, editing, certificates (issue, revoke), kick, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from broker.integration.models import ConnectionEvent
from devices.models import AuditEvent, ChangeEvent, Device, Membership, Role
from devices.services import create_device, create_group
from pki.issuance import issue_certificate
from pki.models import Certificate, CertificateStatus

pytestmark = pytest.mark.django_db

PAGE = "/portal/t/acme/devices/sensor-1/"



@pytest.fixture
def device(acme: Any) -> Device:
    return create_device(acme, "sensor-1", display_name="Boiler", attributes={"site": "north"})


@pytest.fixture
def cert(device: Device) -> Certificate:
    return issue_certificate(device, ec.generate_private_key(ec.SECP256R1()).public_key())


@pytest.fixture
def operator(acme: Any, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_user("olga", password="olga-password-1")
    Membership.objects.create(user=user, tenant=acme, role=Role.OPERATOR)
    client = Client()
    client.force_login(user)
    return client


def _connected(device: Device, serial: str, *, at: datetime) -> None:
    ConnectionEvent.objects.create(tenant=device.tenant, device=device, client_id=device.name, event="connected",
                                   remote_address="10.9.8.7:50000", protocol_version=5,
                                   certificate_serial=serial, at=at)


def test_presence_shows_the_serial_of_the_live_connection(operator: Client, device: Device, cert: Certificate) -> None:
    now = datetime.now(UTC)
    _connected(device, "0ld5e1a1", at=now - timedelta(hours=1))
    ConnectionEvent.objects.create(tenant=device.tenant, device=device, client_id="sensor-1", event="disconnected",
                                   reason="keep-alive timeout", reason_code=0x8D, at=now - timedelta(minutes=30))
    _connected(device, cert.serial, at=now)
    Device.objects.filter(pk=device.pk).update(online=True, last_seen=now, last_ip="10.9.8.7", protocol_version=5)
    response = operator.get(PAGE)
    assert response.context["presence"]["live"].certificate_serial == cert.serial
    body = response.content.decode()
    assert f'<dd id="live-serial"><code>{cert.serial}</code></dd>' in body
    assert "10.9.8.7" in body and "MQTT 5.0" in body and "in use" in body
    assert "keep-alive timeout" in body and "(0x8d)" in body  # the connection log


def test_an_offline_device_has_no_live_serial(operator: Client, device: Device, cert: Certificate) -> None:
    _connected(device, cert.serial, at=datetime.now(UTC))  # the broker has not yet written it back as online
    response = operator.get(PAGE)
    assert response.context["presence"]["live"] is None
    assert '<dd id="live-serial">—</dd>' in response.content.decode()


def test_another_tenants_device_of_the_same_name_is_not_shown(operator: Client, globex: Any) -> None:
    create_device(globex, "sensor-1")
    assert operator.get(PAGE).status_code == 404


def test_editing_a_device_goes_through_the_registry(operator: Client, device: Device, acme: Any) -> None:
    north = create_group(acme, "north")
    response = operator.post(PAGE, {"display_name": "Main boiler", "group": north.pk,
                                    "attributes": "site=south\nfloor=3", "enabled": "on"})
    assert response.status_code == 302 and response["Location"] == PAGE
    device.refresh_from_db()
    assert (device.display_name, device.group, device.attributes) == ("Main boiler", north,
                                                                      {"site": "south", "floor": "3"})
    event = AuditEvent.objects.get(action="device.update")
    assert event.actor_label == "olga" and event.before["display_name"] == "Boiler"


def test_disabling_a_device_on_its_page_is_audited_as_a_disable(operator: Client, device: Device) -> None:
    operator.post(PAGE, {"display_name": "Boiler", "attributes": "site=north"})  # enabled unticked
    device.refresh_from_db()
    assert not device.enabled
    assert AuditEvent.objects.filter(action="device.disable").count() == 1
    assert ChangeEvent.objects.filter(kind="device", op="updated", payload__enabled=False).exists()


def test_a_bad_edit_re_renders_the_page_with_the_error_and_changes_nothing(operator: Client, device: Device) -> None:
    response = operator.post(PAGE, {"display_name": "x" * 201, "attributes": "nonsense", "enabled": "on"})
    assert response.status_code == 200
    errors = response.context["edit_form"].errors
    assert "display_name" in errors and "is not key=value" in str(errors["attributes"])
    device.refresh_from_db()
    assert device.display_name == "Boiler" and not AuditEvent.objects.filter(action="device.update").exists()


def test_kicking_a_device_asks_the_broker_through_the_outbox(operator: Client, device: Device) -> None:
    response = operator.post(PAGE + "kick/")
    assert response.status_code == 302
    assert ChangeEvent.objects.filter(kind="device", op="kick", object_id=str(device.pk)).exists()
    assert AuditEvent.objects.get(action="device.kick").actor_label == "olga"


def test_a_kick_is_a_post_only(operator: Client, device: Device) -> None:
    assert operator.get(PAGE + "kick/").status_code == 405
    assert not ChangeEvent.objects.filter(kind="device", op="kick").exists()


def test_deleting_asks_for_confirmation_first(operator: Client, device: Device, cert: Certificate) -> None:
    response = operator.get(PAGE + "delete/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Delete sensor-1?" in body and "1 active" in body
    assert Device.objects.filter(pk=device.pk).exists()


def test_a_confirmed_delete_goes_through_the_registry(operator: Client, device: Device, cert: Certificate) -> None:
    response = operator.post(PAGE + "delete/")
    assert response.status_code == 302 and response["Location"] == "/portal/t/acme/devices/"
    assert not Device.objects.filter(pk=device.pk).exists()
    assert AuditEvent.objects.get(action="device.delete").actor_label == "olga"
    assert Certificate.objects.filter(pk=cert.pk).exists()  # kept for the CRL and OCSP


def test_revoking_a_certificate_with_a_reason(operator: Client, device: Device, cert: Certificate) -> None:
    response = operator.post(f"{PAGE}certificates/{cert.serial}/revoke/", {"reason": "keyCompromise"}, follow=True)
    assert "Revoked certificate" in response.content.decode()
    cert.refresh_from_db()
    assert (cert.status, cert.revocation_reason) == (CertificateStatus.REVOKED, "keyCompromise")
    assert ChangeEvent.objects.filter(kind="certificate", op="revoked", object_id=str(cert.pk)).exists()
    assert AuditEvent.objects.get(action="certificate.revoke").actor_label == "olga"


def test_revoking_twice_says_it_is_already_revoked(operator: Client, device: Device, cert: Certificate) -> None:
    operator.post(f"{PAGE}certificates/{cert.serial}/revoke/", {"reason": "superseded"})
    response = operator.post(f"{PAGE}certificates/{cert.serial}/revoke/", {"reason": "keyCompromise"}, follow=True)
    assert "already revoked" in response.content.decode()
    cert.refresh_from_db()
    assert cert.revocation_reason == "superseded"


def test_an_unknown_reason_revokes_nothing(operator: Client, device: Device, cert: Certificate) -> None:
    response = operator.post(f"{PAGE}certificates/{cert.serial}/revoke/", {"reason": "boredom"}, follow=True)
    assert "Choose a revocation reason" in response.content.decode()
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.ACTIVE


def test_a_certificate_of_another_device_cannot_be_revoked_through_this_one(
        operator: Client, device: Device, acme: Any) -> None:
    other = issue_certificate(create_device(acme, "other"), ec.generate_private_key(ec.SECP256R1()).public_key())
    assert operator.post(f"{PAGE}certificates/{other.serial}/revoke/", {"reason": "superseded"}).status_code == 404
    other.refresh_from_db()
    assert other.status == CertificateStatus.ACTIVE


def test_issuing_another_certificate_from_the_device_page(operator: Client, device: Device, cert: Certificate) -> None:
    response = operator.post(PAGE + "certificates/", {"key_source": "generate", "days": "30"})
    assert response.status_code == 302 and "/issued/" in response["Location"]
    newest = Certificate.objects.filter(device=device).order_by("-created", "-id").first()
    assert newest.pk != cert.pk and (newest.not_after - newest.not_before).days <= 31


def test_a_bad_csr_on_the_device_page_shows_at_the_field_with_the_form_open(
        operator: Client, device: Device) -> None:
    response = operator.post(PAGE + "certificates/", {"key_source": "csr", "csr_text": "garbage"})
    assert response.status_code == 200
    assert "could not be parsed" in str(response.context["issue_form"].errors["csr_text"])
    assert '<details id="issue" open>' in response.content.decode()
    assert not Certificate.objects.filter(device=device).exists()


def test_any_member_downloads_a_certificate_with_its_chain(bob: Any, device: Device, cert: Certificate) -> None:
    client = Client()
    client.force_login(bob)
    response = client.get(f"{PAGE}certificates/{cert.serial}.pem")
    assert response.status_code == 200
    chain = x509.load_pem_x509_certificates(response.content)
    assert len(chain) == 2 and format(chain[0].serial_number, "x") == cert.serial


def test_the_page_links_the_retained_state_of_the_device(operator: Client, device: Device) -> None:
    assert 'href="/portal/t/acme/devices/sensor-1/retained/"' in operator.get(PAGE).content.decode()


def test_a_device_name_with_dots_and_colons_has_its_page(operator: Client, acme: Any) -> None:
    create_device(acme, "plant-3.line:7")
    assert operator.get("/portal/t/acme/devices/plant-3.line:7/").status_code == 200
