"""`cert issue|revoke|list`, `enroll-token create` and `initpki` as an operator runs them."""

from __future__ import annotations

import hashlib
import stat
import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.core.management.base import CommandError

from devices.services import create_device, create_group, create_tenant
from pki.broker import ensure_broker_server_certificate
from pki.models import Certificate, CertificateAuthority, CertificateStatus, EnrollmentToken

from .helpers import csr_pem, load_cert, openssl_verify, write


@pytest.fixture
def default_device(db: Any) -> Any:
    return create_device(create_tenant("default", "Default"), "probe-7")


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_cert_issue_writes_a_bundle_that_openssl_verifies(default_device: Any, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    _run("cert", "issue", "probe-7", "--out", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["ca.pem", "device.key", "device.pem"]
    assert stat.S_IMODE((out / "device.key").stat().st_mode) == 0o600
    device_pem = (out / "device.pem").read_text()
    assert device_pem.count("BEGIN CERTIFICATE") == 2  # the leaf, then its issuing CA
    result = openssl_verify(tmp_path, root=(out / "ca.pem").read_text(), untrusted=device_pem, leaf=device_pem)
    assert result.returncode == 0, result.stdout + result.stderr
    key = serialization.load_pem_private_key((out / "device.key").read_bytes(), None)
    assert load_cert(device_pem).public_key() == key.public_key()
    # ca.pem is the root the broker's own certificate chains to.
    broker_chain, _ = ensure_broker_server_certificate()
    assert openssl_verify(tmp_path, root=(out / "ca.pem").read_text(), leaf=broker_chain.read_text()).returncode == 0


@pytest.mark.django_db
def test_cert_issue_with_a_csr_signs_it_and_writes_no_key(default_device: Any, tmp_path: Path) -> None:
    csr = write(tmp_path / "req.pem", csr_pem(cn="whatever"))
    _run("cert", "issue", "probe-7", "--csr", str(csr), "--out", str(tmp_path / "b"), "--days", "10")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["ca.pem", "device.pem"]
    cert = Certificate.objects.get(device=default_device)
    assert (cert.not_after - cert.not_before).days == 10
    assert cert.subject == "CN=probe-7,O=default"


@pytest.mark.django_db
def test_cert_issue_names_the_unknown_device_tenant_or_csr(default_device: Any, acme: Any, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No device 'ghost'"):
        _run("cert", "issue", "ghost", "--no-register", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="No tenant with slug 'nowhere'"):
        _run("cert", "issue", "probe-7", "--tenant", "nowhere", "--out", str(tmp_path))
    # probe-7 lives in default, not in acme.
    with pytest.raises(CommandError, match="No device 'probe-7' in tenant 'acme'"):
        _run("cert", "issue", "probe-7", "--tenant", "acme", "--no-register", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="Cannot read"):
        _run("cert", "issue", "probe-7", "--csr", str(tmp_path / "missing.csr"), "--out", str(tmp_path))
    bad = write(tmp_path / "bad.csr", "nonsense")
    with pytest.raises(CommandError, match="could not be parsed"):
        _run("cert", "issue", "probe-7", "--csr", str(bad), "--out", str(tmp_path))


@pytest.mark.django_db
def test_cert_revoke_takes_the_serial_as_openssl_prints_it(default_device: Any, tmp_path: Path) -> None:
    _run("cert", "issue", "probe-7", "--out", str(tmp_path / "b"))
    printed = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "b" / "device.pem"), "-noout", "-serial"],
        capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1]
    colons = ":".join(printed[i:i + 2] for i in range(0, len(printed), 2))
    output = _run("cert", "revoke", colons, "--reason", "keyCompromise")
    cert = Certificate.objects.get(device=default_device)
    assert cert.status == CertificateStatus.REVOKED and cert.serial in output


@pytest.mark.django_db
def test_cert_revoke_refuses_a_bad_reason_or_an_unknown_serial(default_device: Any, tmp_path: Path) -> None:
    _run("cert", "issue", "probe-7", "--out", str(tmp_path / "b"))
    serial = Certificate.objects.get().serial
    with pytest.raises(CommandError, match="Unknown revocation reason"):
        _run("cert", "revoke", serial, "--reason", "boredom")
    with pytest.raises(CommandError, match="No certificate with serial"):
        _run("cert", "revoke", "ABCDEF")
    assert Certificate.objects.get().status == CertificateStatus.ACTIVE


@pytest.mark.django_db
def test_cert_list_filters_by_tenant_and_device(default_device: Any, acme_sensor: Any, tmp_path: Path) -> None:
    _run("cert", "issue", "probe-7", "--out", str(tmp_path / "a"))
    _run("cert", "issue", "sensor-1", "--tenant", "acme", "--out", str(tmp_path / "b"))
    everything = _run("cert", "list")
    assert "probe-7" in everything and "sensor-1" in everything
    acme_only = _run("cert", "list", "--tenant", "acme")
    assert "sensor-1" in acme_only and "probe-7" not in acme_only
    assert _run("cert", "list", "--device", "nothing-here").strip() == "no certificates"


@pytest.mark.django_db
def test_enroll_token_create_prints_the_token_once_and_stores_its_hash(default_device: Any) -> None:
    create_group(default_device.tenant, "line-3")
    printed = _run("enroll-token", "create", "--uses", "10", "--expires", "7d", "--group", "line-3").strip()
    token = EnrollmentToken.objects.get()
    assert token.token_hash == hashlib.sha256(printed.encode()).hexdigest()
    assert token.max_uses == 10 and token.group is not None and token.group.name == "line-3"
    with pytest.raises(CommandError, match="not a duration"):
        _run("enroll-token", "create", "--expires", "forever")
    with pytest.raises(CommandError, match="No group"):
        _run("enroll-token", "create", "--group", "missing")
    with pytest.raises(CommandError, match="No tenant"):
        _run("enroll-token", "create", "--tenant", "missing")


@pytest.mark.django_db
def test_initpki_gives_tenants_without_an_issuing_ca_one(acme: Any) -> None:
    CertificateAuthority.objects.filter(tenant=acme).delete()
    output = _run("initpki")
    assert "issuing CA" in output
    assert CertificateAuthority.objects.filter(tenant=acme, active=True).count() == 1
    assert "issuing CA" not in _run("initpki")


@pytest.mark.django_db
def test_cert_issue_registers_a_new_device_and_writes_its_bundle(db: Any, tmp_path: Path) -> None:
    tenant = create_tenant("default", "Default")
    output = _run("cert", "issue", "sensor-1", "--out", str(tmp_path / "s1"))
    assert "registered device sensor-1 in tenant default" in output
    cert = Certificate.objects.get(device__name="sensor-1", tenant=tenant)
    assert cert.device is not None and cert.device.enabled
    assert (tmp_path / "s1" / "device.key").exists()


@pytest.mark.django_db
def test_cert_issue_with_no_register_refuses_an_unknown_device_and_writes_nothing(db: Any, tmp_path: Path) -> None:
    create_tenant("default", "Default")
    with pytest.raises(CommandError, match="No device 'sensor-2'"):
        _run("cert", "issue", "sensor-2", "--no-register", "--out", str(tmp_path / "s2"))
    assert not (tmp_path / "s2").exists()
    assert not Certificate.objects.exists()


@pytest.mark.django_db
def test_cert_issue_refuses_an_invalid_name_without_registering_it(db: Any, tmp_path: Path) -> None:
    create_tenant("default", "Default")
    with pytest.raises(CommandError, match="letters, digits"):
        _run("cert", "issue", "bad/name", "--out", str(tmp_path / "x"))
    from devices.models import Device

    assert not Device.objects.exists()
