"""Device certificates: the profile the CA imposes, validity, server-side keys, renewal, one key per device."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from django.db import connection
from django.utils import timezone

from devices.models import AuditEvent, ChangeEvent
from devices.services import create_device
from pki.broker import certificate_by_fingerprint
from pki.ca import active_issuing_ca
from pki.errors import PkiError
from pki.issuance import issue_from_csr, issue_with_generated_key
from pki.models import Certificate, CertificateAuthority
from pki.x509util import random_serial

from .helpers import csr_pem, greedy_csr_pem, load_cert, openssl_verify, p256


def _names(cert: x509.Certificate, oid: Any) -> list[str]:
    return [a.value for a in cert.subject.get_attributes_for_oid(oid)]


@pytest.mark.django_db
def test_a_device_certificate_carries_the_profile_the_ca_imposes(acme_sensor: Any) -> None:
    issued = issue_from_csr(acme_sensor, csr_pem())
    cert = load_cert(issued.certificate_pem)
    assert _names(cert, NameOID.COMMON_NAME) == ["sensor-1"]
    assert _names(cert, NameOID.ORGANIZATION_NAME) == ["acme"]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:roost:tenant:acme:device:sensor-1"]
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_agreement and not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = CertificateAuthority.objects.get(pk=issued.certificate.issuer_id)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier.hex() == ca.key_id
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == f"http://roost.test:8000/pki/crl/{ca.pk}.crl"
    aia = {d.access_method: d.access_location.value
           for d in cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value}
    assert aia[AuthorityInformationAccessOID.OCSP] == "http://roost.test:8000/pki/ocsp"
    assert aia[AuthorityInformationAccessOID.CA_ISSUERS] == f"http://roost.test:8000/pki/ca/{ca.pk}.cer"
    assert 0 < cert.serial_number < 2 ** 159
    assert cert.not_valid_after_utc - timezone.now() > timedelta(days=364)


@pytest.mark.django_db
def test_an_rsa_key_gets_key_encipherment_instead_of_key_agreement(acme_sensor: Any) -> None:
    issued = issue_from_csr(acme_sensor, csr_pem(rsa.generate_private_key(65537, 2048)))
    usage = load_cert(issued.certificate_pem).extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_agreement


@pytest.mark.django_db
def test_a_csr_asking_for_ca_rights_server_auth_and_a_foreign_name_still_gets_a_plain_client_certificate(
        acme_sensor: Any) -> None:
    cert = load_cert(issue_from_csr(acme_sensor, greedy_csr_pem()).certificate_pem)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert not usage.key_cert_sign and not usage.crl_sign and not usage.content_commitment
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert _names(cert, NameOID.COMMON_NAME) == ["sensor-1"]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == []


@pytest.mark.django_db
def test_certificates_verify_with_openssl_up_to_the_root(acme_sensor: Any, tmp_path: Path) -> None:
    issued = issue_from_csr(acme_sensor, csr_pem())
    ok = openssl_verify(tmp_path, root=issued.root_pem, untrusted=issued.chain_pem, leaf=issued.certificate_pem,
                        extra=("-purpose", "sslclient"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    not_server = openssl_verify(tmp_path, root=issued.root_pem, untrusted=issued.chain_pem,
                                leaf=issued.certificate_pem, extra=("-purpose", "sslserver"))
    assert not_server.returncode != 0


@pytest.mark.django_db
def test_validity_follows_the_setting_and_the_requested_days(acme_sensor: Any, settings: Any) -> None:
    settings.ROOST_PKI_DEVICE_CERT_DAYS = 30
    default = issue_from_csr(acme_sensor, csr_pem()).certificate
    explicit = issue_from_csr(acme_sensor, csr_pem(), days=7).certificate
    assert timedelta(days=30) <= default.not_after - default.not_before <= timedelta(days=30, minutes=6)
    assert timedelta(days=7) <= explicit.not_after - explicit.not_before <= timedelta(days=7, minutes=6)
    with pytest.raises(PkiError) as refused:
        issue_from_csr(acme_sensor, csr_pem(), days=0)
    assert refused.value.status == 400


@pytest.mark.django_db
def test_validity_never_goes_beyond_the_issuing_ca(acme_sensor: Any) -> None:
    ca = active_issuing_ca(acme_sensor.tenant)
    soon = timezone.now().replace(microsecond=0) + timedelta(days=400)
    CertificateAuthority.objects.filter(pk=ca.pk).update(not_after=soon)
    cert = issue_from_csr(acme_sensor, csr_pem(), days=3000).certificate
    assert cert.not_after <= soon


@pytest.mark.django_db
def test_a_server_generated_key_comes_back_once_as_pem_and_as_a_passphrase_protected_pkcs12(
        acme_sensor: Any, pki_data_dir: Path) -> None:
    issued = issue_with_generated_key(acme_sensor, passphrase="open sesame")
    key = serialization.load_pem_private_key(issued.private_key_pem.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    cert = load_cert(issued.certificate_pem)
    assert cert.public_key() == key.public_key()
    p12_key, p12_cert, extra = pkcs12.load_key_and_certificates(issued.pkcs12, b"open sesame")
    assert p12_cert == cert and p12_key is not None and p12_key.public_key() == key.public_key()
    assert [c.subject for c in extra] == [load_cert(issued.chain_pem).subject]
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(issued.pkcs12, b"wrong")
    # The key is nowhere at rest: not in the database row, not under the data directory.
    row = Certificate.objects.get(pk=issued.certificate.pk)
    assert "PRIVATE KEY" not in row.certificate_pem and row.key_generated_by_server
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    for path in pki_data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert issued.private_key_pem.encode() not in content and der not in content


@pytest.mark.django_db
def test_a_generated_pkcs12_passphrase_is_returned_when_none_is_given(acme_sensor: Any) -> None:
    issued = issue_with_generated_key(acme_sensor)
    assert len(issued.pkcs12_passphrase) >= 20
    assert pkcs12.load_key_and_certificates(issued.pkcs12, issued.pkcs12_passphrase.encode())[1] is not None


@pytest.mark.django_db
def test_the_same_public_key_for_two_devices_is_refused_as_a_conflict(acme_sensor: Any, globex_sensor: Any) -> None:
    key = p256()
    issue_from_csr(acme_sensor, csr_pem(key))
    other = create_device(acme_sensor.tenant, "sensor-2")
    for device in (other, globex_sensor):
        with pytest.raises(PkiError) as refused:
            issue_from_csr(device, csr_pem(key))
        assert refused.value.status == 409
        assert "another device" in refused.value.message


@pytest.mark.django_db
def test_renewal_keeps_the_previous_certificate_valid(acme_sensor: Any) -> None:
    key = p256()
    first = issue_from_csr(acme_sensor, csr_pem(key)).certificate
    second = issue_from_csr(acme_sensor, csr_pem(key)).certificate
    first.refresh_from_db()
    assert first.serial != second.serial
    assert first.effective_status == "active" and second.effective_status == "active"
    assert set(Certificate.objects.currently_valid().filter(device=acme_sensor)) == {first, second}


@pytest.mark.django_db
def test_issuance_writes_an_audit_event_and_a_change_event(acme_sensor: Any) -> None:
    cert = issue_from_csr(acme_sensor, csr_pem()).certificate
    audit = AuditEvent.objects.get(action="certificate.issue")
    assert audit.tenant == acme_sensor.tenant and audit.after["serial"] == cert.serial
    change = ChangeEvent.objects.get(kind="certificate", op="issued")
    assert change.tenant == acme_sensor.tenant
    assert change.payload["serial"] == cert.serial
    assert change.payload["fingerprint"] == cert.fingerprint
    assert change.payload["device"] == "sensor-1" and change.payload["tenant"] == "acme"


@pytest.mark.django_db
def test_the_stored_row_describes_the_certificate(acme_sensor: Any) -> None:
    issued = issue_from_csr(acme_sensor, csr_pem())
    row, cert = issued.certificate, load_cert(issued.certificate_pem)
    assert row.serial == format(cert.serial_number, "x")
    assert row.fingerprint == cert.fingerprint(hashes.SHA256()).hex()
    assert row.subject == "CN=sensor-1,O=acme"
    assert row.not_after == cert.not_valid_after_utc and row.issued_by == "system"
    assert row.device == acme_sensor and row.issuer.tenant == acme_sensor.tenant


@pytest.mark.django_db
def test_a_certificate_is_found_by_fingerprint_in_any_notation_and_unknown_ones_are_not(acme_sensor: Any) -> None:
    row = issue_from_csr(acme_sensor, csr_pem()).certificate
    colons = ":".join(row.fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()
    assert certificate_by_fingerprint(row.fingerprint) == row
    assert certificate_by_fingerprint(colons) == row
    assert certificate_by_fingerprint("00" * 32) is None


def test_serials_are_positive_and_fit_in_twenty_octets() -> None:
    serials = [random_serial() for _ in range(2000)]
    for serial in serials:
        # DER INTEGER content: the magnitude plus a sign octet when the top bit is set.
        assert serial > 0 and len(serial.to_bytes((serial.bit_length() + 8) // 8, "big")) <= 20
    assert len(set(serials)) == len(serials)
    assert max(serials).bit_length() > 150  # the randomness is not truncated to a few bytes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_issuances_of_one_key_for_several_devices_certify_it_for_one_only(acme: Any) -> None:
    key = p256()
    devices = [create_device(acme, f"racer-{i}") for i in range(6)]
    barrier = threading.Barrier(len(devices))
    outcomes: list[int] = []

    def attempt(device: Any) -> None:
        try:
            barrier.wait(5)
            issue_from_csr(device, csr_pem(key))
            outcomes.append(201)
        except PkiError as refused:
            outcomes.append(refused.status)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(device,)) for device in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == [201] + [409] * (len(devices) - 1)
    assert Certificate.objects.filter(tenant=acme).values("device_name").distinct().count() == 1
