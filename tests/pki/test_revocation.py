"""Revocation with RFC 5280 reasons, the change event the broker acts on, CRLs and their numbers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from django.utils import timezone

from devices.models import AuditEvent, ChangeEvent
from devices.services import delete_device
from pki.ca import active_issuing_ca, ensure_root_ca
from pki.errors import PkiError
from pki.issuance import issue_from_csr
from pki.models import Certificate, CertificateAuthority, CertificateStatus
from pki.revocation import (
    current_crl,
    find_certificate,
    mark_expired_certificates,
    parse_reason,
    publish_crl,
    refresh_crls,
    revoke_certificate,
)

from .helpers import csr_pem, openssl, openssl_verify, write


@pytest.fixture
def issued(acme_sensor: Any) -> Any:
    return issue_from_csr(acme_sensor, csr_pem())


def _crl(ca: CertificateAuthority) -> x509.CertificateRevocationList:
    ca.refresh_from_db()
    return x509.load_der_x509_crl(current_crl(ca))


@pytest.mark.django_db
def test_revoking_records_the_reason_and_time_and_announces_it_to_the_broker(issued: Any) -> None:
    cert = revoke_certificate(issued.certificate, "keyCompromise")
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.REVOKED and cert.revocation_reason == "keyCompromise"
    assert timezone.now() - cert.revoked_at < timedelta(seconds=5)
    change = ChangeEvent.objects.get(kind="certificate", op="revoked")
    assert change.payload == {"serial": cert.serial, "fingerprint": cert.fingerprint, "device": "sensor-1",
                              "tenant": "acme", "reason": "keyCompromise"}
    assert AuditEvent.objects.filter(action="certificate.revoke", tenant=cert.tenant).count() == 1


@pytest.mark.django_db
def test_revoking_twice_is_a_conflict_and_unknown_reasons_are_refused(issued: Any) -> None:
    revoke_certificate(issued.certificate, "superseded")
    with pytest.raises(PkiError) as twice:
        revoke_certificate(issued.certificate, "superseded")
    assert twice.value.status == 409
    with pytest.raises(PkiError) as bad:
        parse_reason("because")
    assert bad.value.status == 400 and "keyCompromise" in bad.value.message
    with pytest.raises(PkiError):
        parse_reason("certificateHold")  # revocation in Roost is final; holds are not offered


def test_reasons_are_accepted_in_any_spelling() -> None:
    assert parse_reason("key_compromise") == "keyCompromise"
    assert parse_reason("CESSATION-OF-OPERATION") == "cessationOfOperation"
    assert parse_reason("") == "unspecified"


@pytest.mark.django_db
def test_serials_are_found_as_openssl_prints_them_and_only_in_their_tenant(issued: Any, globex: Any) -> None:
    serial = issued.certificate.serial.rjust(40, "0")
    printed = ":".join(serial[i:i + 2] for i in range(0, 40, 2)).upper()
    assert find_certificate(printed) == issued.certificate
    assert find_certificate(f"serial={serial.upper()}") == issued.certificate
    with pytest.raises(PkiError) as other_tenant:
        find_certificate(serial, tenant=globex)
    assert other_tenant.value.status == 404
    with pytest.raises(PkiError) as not_hex:
        find_certificate("xyz")
    assert not_hex.value.status == 400


@pytest.mark.django_db
def test_the_crl_lists_the_revoked_certificate_with_its_reason_and_is_signed_by_the_issuing_ca(
        issued: Any, acme_sensor: Any) -> None:
    other = issue_from_csr(acme_sensor, csr_pem()).certificate
    revoke_certificate(issued.certificate, "keyCompromise")
    ca = active_issuing_ca(acme_sensor.tenant)
    crl = _crl(ca)
    ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    assert crl.is_signature_valid(ca_cert.public_key())
    assert crl.issuer == ca_cert.subject
    entry = crl.get_revoked_certificate_by_serial_number(int(issued.certificate.serial, 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(int(other.serial, 16)) is None
    assert crl.next_update_utc > timezone.now() + timedelta(days=6)


@pytest.mark.django_db
def test_the_crl_number_grows_with_every_revocation_and_refresh(acme_sensor: Any) -> None:
    ca = active_issuing_ca(acme_sensor.tenant)
    numbers = []
    for _ in range(2):
        revoke_certificate(issue_from_csr(acme_sensor, csr_pem()).certificate)
        numbers.append(_crl(ca).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    publish_crl(ca)
    numbers.append(_crl(ca).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    assert numbers == sorted(numbers) and len(set(numbers)) == 3


@pytest.mark.django_db
def test_refresh_re_signs_only_crls_close_to_their_next_update(acme: Any, globex: Any) -> None:
    for ca in CertificateAuthority.objects.all():
        publish_crl(ca)
    assert refresh_crls() == 0
    due = active_issuing_ca(acme)
    CertificateAuthority.objects.filter(pk=due.pk).update(crl_next_update=timezone.now() + timedelta(hours=2))
    before = CertificateAuthority.objects.get(pk=due.pk).crl_number
    assert refresh_crls() == 1
    due.refresh_from_db()
    assert due.crl_number == before + 1 and due.crl_next_update > timezone.now() + timedelta(days=6)


@pytest.mark.django_db
def test_openssl_reads_the_crl_and_refuses_the_revoked_certificate(issued: Any, acme_sensor: Any,
                                                                  tmp_path: Path, client: Any) -> None:
    revoke_certificate(issued.certificate, "cessationOfOperation")
    ca = active_issuing_ca(acme_sensor.tenant)
    root = ensure_root_ca()[0]
    issuing_crl = write(tmp_path / "issuing.crl", client.get(f"/pki/crl/{ca.pk}.pem").content)
    root_crl = write(tmp_path / "root.crl", client.get(f"/pki/crl/{root.pk}.pem").content)
    chain = write(tmp_path / "chain.pem", ca.certificate_pem + root.certificate_pem)
    parsed = openssl("crl", "-in", str(issuing_crl), "-CAfile", str(chain), "-noout", "-text")
    assert parsed.returncode == 0, parsed.stderr
    assert "verify OK" in parsed.stderr + parsed.stdout
    assert issued.certificate.serial.upper()[-8:] in parsed.stdout.replace(":", "").upper()
    refused = openssl_verify(tmp_path, root=root.certificate_pem, untrusted=issued.chain_pem,
                             leaf=issued.certificate_pem,
                             extra=("-crl_check_all", "-CRLfile", str(issuing_crl), "-CRLfile", str(root_crl)))
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr
    fine = issue_from_csr(acme_sensor, csr_pem())
    accepted = openssl_verify(tmp_path, root=root.certificate_pem, untrusted=fine.chain_pem,
                              leaf=fine.certificate_pem,
                              extra=("-crl_check_all", "-CRLfile", str(issuing_crl), "-CRLfile", str(root_crl)))
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


@pytest.mark.django_db
def test_crl_urls_serve_der_and_pem_and_unknown_cas_are_not_found(issued: Any, client: Any) -> None:
    ca_id = issued.certificate.issuer_id
    der = client.get(f"/pki/crl/{ca_id}.crl")
    assert der.status_code == 200 and der["Content-Type"] == "application/pkix-crl"
    x509.load_der_x509_crl(der.content)
    pem = client.get(f"/pki/crl/{ca_id}.pem")
    assert pem.status_code == 200 and pem.content.startswith(b"-----BEGIN X509 CRL-----")
    assert client.get("/pki/crl/999999.crl").status_code == 404


@pytest.mark.django_db
def test_ca_certificates_are_served_as_a_chain_and_the_root_alone(issued: Any, client: Any) -> None:
    root = ensure_root_ca()[0]
    ca = issued.certificate.issuer
    chain = client.get(f"/pki/ca/{ca.pk}.pem").content.decode()
    assert chain == ca.certificate_pem + root.certificate_pem
    assert client.get("/pki/ca/root.pem").content.decode() == root.certificate_pem
    der = client.get(f"/pki/ca/{ca.pk}.cer")
    assert der["Content-Type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(der.content).subject.rfc4514_string() == ca.subject
    assert client.get("/pki/ca/424242.pem").status_code == 404


@pytest.mark.django_db
def test_expired_certificates_are_marked_and_announced(issued: Any) -> None:
    Certificate.objects.filter(pk=issued.certificate.pk).update(not_after=timezone.now() - timedelta(seconds=1))
    assert Certificate.objects.get(pk=issued.certificate.pk).effective_status == "expired"
    assert mark_expired_certificates() == 1
    assert Certificate.objects.get(pk=issued.certificate.pk).status == CertificateStatus.EXPIRED
    change = ChangeEvent.objects.get(kind="certificate", op="expired")
    assert change.payload["fingerprint"] == issued.certificate.fingerprint
    assert mark_expired_certificates() == 0


@pytest.mark.django_db
def test_deleting_a_device_revokes_its_certificates(issued: Any, acme_sensor: Any) -> None:
    delete_device(acme_sensor)
    cert = Certificate.objects.get(pk=issued.certificate.pk)
    assert cert.status == CertificateStatus.REVOKED and cert.revocation_reason == "cessationOfOperation"
    assert cert.device is None and cert.device_name == "sensor-1"
    assert ChangeEvent.objects.filter(kind="certificate", op="revoked").count() == 1
