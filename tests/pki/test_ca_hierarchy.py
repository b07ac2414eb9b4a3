"""The root CA, the per-tenant issuing CAs, keys sealed at rest, and rotation."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from django.utils import timezone

from pki.ca import active_issuing_ca, ensure_root_ca, rotate_issuing_ca, trusted_client_ca_bundle
from pki.issuance import issue_from_csr
from pki.models import CaKind, CertificateAuthority

from .helpers import csr_pem, load_cert, openssl_verify

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_initpki_creates_a_p384_root_valid_for_ten_years_once() -> None:
    call_command("initpki")
    call_command("initpki")
    roots = CertificateAuthority.objects.filter(kind=CaKind.ROOT)
    assert roots.count() == 1
    cert = load_cert(roots.get().certificate_pem)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp384r1"
    assert cert.issuer == cert.subject
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=3650) <= lifetime <= timedelta(days=3654)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca


@pytest.mark.django_db
def test_a_new_tenant_gets_a_p256_issuing_ca_signed_by_the_root(acme: Any, tmp_path: Path) -> None:
    ca = CertificateAuthority.objects.get(kind=CaKind.ISSUING, tenant=acme)
    root, created = ensure_root_ca()
    assert not created
    cert = load_cert(ca.certificate_pem)
    assert cert.public_key().curve.name == "secp256r1"
    assert timedelta(days=1825) <= cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=1828)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert openssl_verify(tmp_path, root=root.certificate_pem, leaf=ca.certificate_pem).returncode == 0


@pytest.mark.django_db
def test_one_tenants_issuing_ca_does_not_vouch_for_another_tenants_devices(
        acme_sensor: Any, globex: Any, tmp_path: Path) -> None:
    issued = issue_from_csr(acme_sensor, csr_pem())
    globex_ca = active_issuing_ca(globex)
    # Trust only globex's issuing CA (partial chain): acme's certificate must not verify.
    result = openssl_verify(tmp_path, root=globex_ca.certificate_pem, leaf=issued.certificate_pem,
                            extra=("-partial_chain",))
    assert result.returncode != 0
    result = openssl_verify(tmp_path, root=issued.chain_pem, leaf=issued.certificate_pem, extra=("-partial_chain",))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_ca_keys_on_disk_are_encrypted_and_private(acme: Any, pki_data_dir: Path) -> None:
    key_files = sorted((pki_data_dir / "pki" / "ca").glob("*.key.pem"))
    assert len(key_files) == 2  # the root and acme's issuing CA
    passphrase = (pki_data_dir / "pki" / "passphrase").read_bytes().strip()
    assert stat.S_IMODE((pki_data_dir / "pki" / "passphrase").stat().st_mode) == 0o600
    for path in key_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = path.read_bytes()
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(data, None)
        with pytest.raises(ValueError):
            serialization.load_pem_private_key(data, b"not the passphrase")
        assert serialization.load_pem_private_key(data, passphrase) is not None


@pytest.mark.django_db
def test_a_configured_passphrase_seals_the_keys_and_no_passphrase_file_is_written(
        settings: Any, pki_data_dir: Path) -> None:
    settings.ROOST_PKI_PASSPHRASE = "correct horse battery staple"
    root, _ = ensure_root_ca()
    data = (pki_data_dir / "pki" / "ca" / root.key_file).read_bytes()
    assert serialization.load_pem_private_key(data, b"correct horse battery staple") is not None
    assert not (pki_data_dir / "pki" / "passphrase").exists()


def _import_settings(env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOST_", "DATABASE_URL"))}
    env.update(ROOST_ENV="production", ROOST_DATA_DIR=str(tmp_path),
               ROOST_SECRET_KEY="p" + "".join(chr(65 + i % 26) for i in range(60)), **env_extra)
    return subprocess.run([sys.executable, "-c", "import roost.settings"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_production_refuses_to_start_without_a_pki_passphrase(tmp_path: Path) -> None:
    refused = _import_settings({}, tmp_path)
    assert refused.returncode != 0
    assert "ROOST_PKI_PASSPHRASE" in refused.stderr
    started = _import_settings({"ROOST_PKI_PASSPHRASE": "a-long-production-passphrase"}, tmp_path)
    assert "ROOST_PKI_PASSPHRASE" not in started.stderr


@pytest.mark.django_db
def test_rotation_makes_the_new_ca_sign_and_keeps_the_old_one_trusted(acme_sensor: Any, tmp_path: Path) -> None:
    old_ca = active_issuing_ca(acme_sensor.tenant)
    before = issue_from_csr(acme_sensor, csr_pem())
    new_ca = rotate_issuing_ca(acme_sensor.tenant)
    after = issue_from_csr(acme_sensor, csr_pem())
    old_ca.refresh_from_db()
    assert not old_ca.active and new_ca.active
    assert before.certificate.issuer_id == old_ca.pk
    assert after.certificate.issuer_id == new_ca.pk
    assert load_cert(after.certificate_pem).issuer == load_cert(new_ca.certificate_pem).subject
    bundle = trusted_client_ca_bundle()
    assert old_ca.certificate_pem in bundle and new_ca.certificate_pem in bundle
    root = ensure_root_ca()[0].certificate_pem
    for issued in (before, after):
        result = openssl_verify(tmp_path, root=root, untrusted=issued.chain_pem, leaf=issued.certificate_pem)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_the_client_trust_bundle_leaves_out_expired_issuing_cas(acme: Any, globex: Any) -> None:
    expired = active_issuing_ca(globex)
    CertificateAuthority.objects.filter(pk=expired.pk).update(not_after=timezone.now() - timedelta(seconds=1))
    bundle = trusted_client_ca_bundle()
    assert ensure_root_ca()[0].certificate_pem in bundle
    assert active_issuing_ca(acme).certificate_pem in bundle
    assert expired.certificate_pem not in bundle
    assert len(x509.load_pem_x509_certificates(bundle.encode())) == 2


@pytest.mark.django_db
def test_an_expired_issuing_ca_is_replaced_before_it_signs(acme_sensor: Any) -> None:
    expired = active_issuing_ca(acme_sensor.tenant)
    CertificateAuthority.objects.filter(pk=expired.pk).update(not_after=timezone.now() - timedelta(seconds=1))
    issued = issue_from_csr(acme_sensor, csr_pem())
    assert issued.certificate.issuer_id != expired.pk
    assert issued.certificate.not_after > timezone.now() + timedelta(days=300)


@pytest.mark.django_db(transaction=True)
def test_deleting_a_tenant_removes_its_cas_certificates_and_key_files(
        acme_sensor: Any, globex: Any, pki_data_dir: Path) -> None:
    from pki.models import Certificate

    issue_from_csr(acme_sensor, csr_pem())
    acme_ca = active_issuing_ca(acme_sensor.tenant)
    key_file = pki_data_dir / "pki" / "ca" / acme_ca.key_file
    assert key_file.exists()
    acme_sensor.tenant.delete()
    assert not CertificateAuthority.objects.filter(pk=acme_ca.pk).exists()
    assert not Certificate.objects.exists()
    assert not key_file.exists()
    assert (pki_data_dir / "pki" / "ca" / active_issuing_ca(globex).key_file).exists()
