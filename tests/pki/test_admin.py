"""Admin pages for CAs, certificates (search, filters, revoke action) and enrollment tokens."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from pki.enrollment import create_token
from pki.issuance import issue_from_csr
from pki.models import Certificate, CertificateStatus

from .helpers import csr_pem

CHANGELIST = "/admin/pki/certificate/"


@pytest.mark.django_db
def test_the_pki_admin_pages_render(admin_client: Client, acme_sensor: Any) -> None:
    issue_from_csr(acme_sensor, csr_pem())
    create_token(acme_sensor.tenant)
    for url in ("/admin/pki/certificateauthority/", CHANGELIST, "/admin/pki/enrollmenttoken/",
                f"{CHANGELIST}?status=active", f"{CHANGELIST}?tenant__id__exact={acme_sensor.tenant.pk}"):
        assert admin_client.get(url).status_code == 200, url


@pytest.mark.django_db
def test_certificates_are_found_by_serial_with_colons_by_fingerprint_and_by_device(
        admin_client: Client, acme_sensor: Any, globex_sensor: Any) -> None:
    mine = issue_from_csr(acme_sensor, csr_pem()).certificate
    theirs = issue_from_csr(globex_sensor, csr_pem()).certificate
    colons = ":".join(mine.serial.rjust(40, "0")[i:i + 2] for i in range(0, 40, 2)).upper()
    for term in (colons, mine.fingerprint.upper()):
        page = admin_client.get(CHANGELIST, {"q": term}).content.decode()
        assert mine.serial in page and theirs.serial not in page
    by_device = admin_client.get(CHANGELIST, {"q": "sensor-1"}).content.decode()
    assert mine.serial in by_device and theirs.serial in by_device


@pytest.mark.django_db
def test_the_status_filter_counts_an_overdue_active_certificate_as_expired(
        admin_client: Client, acme_sensor: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    old = issue_from_csr(acme_sensor, csr_pem()).certificate
    fresh = issue_from_csr(acme_sensor, csr_pem()).certificate
    Certificate.objects.filter(pk=old.pk).update(not_after=timezone.now() - timedelta(days=1))
    expired = admin_client.get(CHANGELIST, {"status": "expired"}).content.decode()
    assert old.serial in expired and fresh.serial not in expired


@pytest.mark.django_db
def test_the_revoke_action_asks_for_a_reason_then_revokes(admin_client: Client, acme_sensor: Any) -> None:
    cert = issue_from_csr(acme_sensor, csr_pem()).certificate
    confirm = admin_client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [cert.pk]})
    assert confirm.status_code == 200 and b"keyCompromise" in confirm.content
    assert Certificate.objects.get(pk=cert.pk).status == CertificateStatus.ACTIVE
    done = admin_client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [cert.pk],
                                          "reason": "keyCompromise", "apply": "Revoke"})
    assert done.status_code == 302
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.REVOKED and cert.revocation_reason == "keyCompromise"


@pytest.mark.django_db
def test_certificates_cannot_be_added_or_edited_by_hand(admin_client: Client, acme_sensor: Any) -> None:
    cert = issue_from_csr(acme_sensor, csr_pem()).certificate
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    page = admin_client.post(f"{CHANGELIST}{cert.pk}/change/", {"status": "active", "serial": "1"})
    assert page.status_code == 403
    assert Certificate.objects.get(pk=cert.pk).serial == cert.serial


@pytest.mark.django_db
def test_a_token_cannot_be_pointed_at_another_tenants_group_in_the_admin(
        admin_client: Client, acme: Any, globex: Any) -> None:
    from devices.services import create_group
    from pki.models import EnrollmentToken

    foreign = create_group(globex, "globex-only")
    token = create_token(acme).token
    form = {"label": "x", "max_uses": "1", "expires_at_0": "2030-01-01", "expires_at_1": "00:00:00",
            "group": str(foreign.pk), "attribute_template": "{}", "enabled": "on"}
    page = admin_client.post(f"/admin/pki/enrollmenttoken/{token.pk}/change/", form)
    assert page.status_code == 200 and b"another tenant" in page.content
    assert EnrollmentToken.objects.get(pk=token.pk).group is None
    form["group"] = ""
    assert admin_client.post(f"/admin/pki/enrollmenttoken/{token.pk}/change/", form).status_code == 302
    assert EnrollmentToken.objects.get(pk=token.pk).max_uses == 1
