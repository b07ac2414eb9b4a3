"""A key once revoked for keyCompromise is never certified again, for any device of any tenant."""

from __future__ import annotations

from typing import Any

import pytest

from devices.services import create_device, delete_tenant
from pki.errors import PkiError
from pki.issuance import issue_certificate
from pki.models import Certificate, CertificateStatus, CompromisedKey
from pki.revocation import revoke_certificate

from .helpers import p256


def _refusal(device: Any, key: Any) -> PkiError:
    with pytest.raises(PkiError) as refused:
        issue_certificate(device, key.public_key())
    return refused.value


def test_a_key_revoked_for_key_compromise_is_refused_for_its_own_device_with_409(acme_sensor: Any) -> None:
    key = p256()
    revoke_certificate(issue_certificate(acme_sensor, key.public_key()), "keyCompromise")
    error = _refusal(acme_sensor, key)
    assert (error.status, error.code) == (409, "public_key_compromised")


def test_a_key_revoked_for_another_reason_may_be_certified_again_for_its_device(acme_sensor: Any) -> None:
    key = p256()
    revoke_certificate(issue_certificate(acme_sensor, key.public_key()), "superseded")
    assert issue_certificate(acme_sensor, key.public_key()).status == CertificateStatus.ACTIVE


def test_a_compromised_key_is_refused_in_another_tenant_even_after_its_tenant_is_deleted(
        acme: Any, acme_sensor: Any, globex_sensor: Any) -> None:
    key = p256()
    revoke_certificate(issue_certificate(acme_sensor, key.public_key()), "key_compromise")
    delete_tenant(acme)  # takes the key's claim (CertifiedKey) with it, not the compromise
    error = _refusal(globex_sensor, key)
    assert (error.status, error.code) == (409, "public_key_compromised")
    assert CompromisedKey.objects.filter(tenant_slug="acme", device_name="sensor-1").count() == 1


def test_a_fresh_key_is_certified_for_a_device_whose_previous_key_was_compromised(acme_sensor: Any) -> None:
    revoke_certificate(issue_certificate(acme_sensor, p256().public_key()), "keyCompromise")
    assert issue_certificate(acme_sensor, p256().public_key()).status == CertificateStatus.ACTIVE


def test_every_certificate_of_a_compromised_key_is_revoked_with_it(acme: Any, acme_sensor: Any) -> None:
    key = p256()
    first = issue_certificate(acme_sensor, key.public_key())
    second = issue_certificate(acme_sensor, key.public_key())
    other = issue_certificate(create_device(acme, "sensor-2"), p256().public_key())
    revoke_certificate(first, "keyCompromise")
    second = Certificate.objects.get(pk=second.pk)
    assert (second.status, second.revocation_reason) == (CertificateStatus.REVOKED, "keyCompromise")
    assert Certificate.objects.get(pk=other.pk).status == CertificateStatus.ACTIVE


@pytest.mark.django_db
def test_the_api_answers_a_csr_for_a_compromised_key_with_409_public_key_compromised(
        alice: Any, acme_sensor: Any) -> None:
    import json

    from django.test import Client

    from .helpers import csr_pem

    key = p256()
    revoke_certificate(issue_certificate(acme_sensor, key.public_key()), "keyCompromise")
    client = Client()
    client.force_login(alice)
    response = client.post("/api/v1/tenants/acme/devices/sensor-1/certificates",
                           data=json.dumps({"csr": csr_pem(key)}), content_type="application/json")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "public_key_compromised"
    fresh = client.post("/api/v1/tenants/acme/devices/sensor-1/certificates",
                        data=json.dumps({"csr": csr_pem()}), content_type="application/json")
    assert fresh.status_code == 201, fresh.content


def test_the_migration_marks_keys_already_revoked_for_key_compromise(acme: Any, acme_sensor: Any) -> None:
    import importlib

    from django.apps import apps

    migration = importlib.import_module("pki.migrations.0003_compromised_key")
    compromised, superseded = p256(), p256()
    for key, reason in ((compromised, "keyCompromise"), (compromised, "keyCompromise"), (superseded, "superseded")):
        # As revocations made before this release left them: no CompromisedKey row.
        Certificate.objects.filter(pk=issue_certificate(acme_sensor, key.public_key()).pk).update(
            status=CertificateStatus.REVOKED, revocation_reason=reason)
    assert not CompromisedKey.objects.exists()
    migration.mark_compromised_keys(apps, None)
    [row] = CompromisedKey.objects.all()
    assert (row.tenant_slug, row.device_name) == ("acme", "sensor-1")
    assert _refusal(acme_sensor, compromised).code == "public_key_compromised"
    assert issue_certificate(acme_sensor, superseded.public_key()).status == CertificateStatus.ACTIVE
