"""Bulk imports, run in-process through the same service the worker runs: what gets created,
what is reported (with row numbers), and that running a file twice changes nothing."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from devices.imports import (
    CHUNK_ROWS,
    bundle_file,
    claim_job,
    job_dir,
    prune_jobs,
    run_job,
    submit_import,
)
from devices.models import AuditEvent, ChangeEvent, Device, DeviceGroup, ImportJob, ImportJobState
from devices.services import create_device, create_group
from devices.tasks import run_import as run_import_task
from pki.ca import active_issuing_ca
from pki.issuance import issue_certificate
from pki.models import Certificate
from tests.devices.import_support import (
    GROUP,
    bundle_entries,
    csv_bytes,
    fleet_with_ten_bad_rows,
    import_data_dir,  # noqa: F401 - autouse fixture
    run_import,
)
from tests.pki.helpers import csr_pem, load_cert, openssl_verify, p256

pytestmark = pytest.mark.django_db


@pytest.fixture
def line(acme: Any) -> Any:
    return create_group(acme, GROUP)


def _errors(job: ImportJob) -> dict[int, tuple[str, str]]:
    return {error["row"]: (error["code"], error["field"]) for error in job.errors}


# A thousand rows ------------------------------------------------------------------------------


def test_a_thousand_rows_with_ten_bad_ones_create_990_devices_and_report_the_ten_by_row(acme: Any, line: Any) -> None:
    data, expected = fleet_with_ten_bad_rows(1000)
    job = run_import(acme, data, issue_certs=True)
    assert job.state == ImportJobState.DONE, job.message
    assert (job.total, job.done, job.created_count, job.existing_count, job.failed) == (1000, 1000, 990, 0, 10)
    assert job.certificate_count == 990
    assert _errors(job) == expected
    assert Device.objects.filter(tenant=acme).count() == 990
    assert Certificate.objects.filter(tenant=acme).count() == 990
    assert not DeviceGroup.objects.filter(tenant=acme, name="no-such-group").exists()
    device = Device.objects.get(tenant=acme, name="sensor-0013")
    assert device.group == line and device.tags == ["pilot", "th-2"]
    assert device.attributes == {"floor": 6, "site": "north"} and device.display_name == "Sensor 13"


def test_importing_the_same_file_again_reports_existing_devices_and_creates_nothing(acme: Any, line: Any) -> None:
    data, expected = fleet_with_ten_bad_rows(1000)
    run_import(acme, data, issue_certs=True)
    devices, certificates = Device.objects.count(), Certificate.objects.count()
    again = run_import(acme, data, issue_certs=True)
    assert again.state == ImportJobState.DONE
    assert (again.created_count, again.existing_count, again.failed, again.certificate_count) == (0, 990, 10, 0)
    assert _errors(again) == expected
    assert (Device.objects.count(), Certificate.objects.count()) == (devices, certificates)
    assert not again.has_bundle and bundle_file(again) is None


# The bundle -----------------------------------------------------------------------------------


def _small_fleet(count: int, csr_rows: dict[int, Any]) -> bytes:
    return csv_bytes([{"name": f"node-{i}", "csr": csr_pem(csr_rows[i]) if i in csr_rows else ""}
                      for i in range(count)])


def test_the_bundle_has_a_folder_per_new_device_whose_certificate_verifies_against_the_ca(acme: Any,
                                                                                         tmp_path: Path) -> None:
    job = run_import(acme, _small_fleet(12, {}), issue_certs=True)
    entries = bundle_entries(bundle_file(job))
    issuing = load_cert(active_issuing_ca(acme).certificate_pem)
    for i in range(12):
        folder = f"node-{i}/"
        leaf = load_cert(entries[folder + "device.pem"])
        leaf.verify_directly_issued_by(issuing)
        key = serialization.load_pem_private_key(entries[folder + "device.key"], None)
        assert key.public_key() == leaf.public_key()
        assert leaf.subject.rfc4514_string() == f"CN=node-{i},O=acme"
    result = openssl_verify(tmp_path, root=entries["node-0/ca.pem"].decode(), leaf=entries["node-0/device.pem"].decode(),
                            untrusted=entries["node-0/chain.pem"].decode())
    assert result.returncode == 0, result.stderr
    manifest = entries["manifest.csv"].decode().splitlines()
    assert manifest[0] == "name,serial,fingerprint,not_after,key" and len(manifest) == 13


def test_a_row_with_a_csr_is_certified_for_the_csr_key_and_gets_no_key_file(acme: Any) -> None:
    mine = p256()
    job = run_import(acme, _small_fleet(3, {1: mine}), issue_certs=True)
    entries = bundle_entries(bundle_file(job))
    assert load_cert(entries["node-1/device.pem"]).public_key() == mine.public_key()
    assert "node-1/device.key" not in entries and "node-0/device.key" in entries
    assert Certificate.objects.get(device_name="node-1").key_generated_by_server is False


def test_without_issue_certs_devices_are_created_and_the_job_has_no_bundle(acme: Any) -> None:
    job = run_import(acme, _small_fleet(3, {}))
    assert (job.created_count, job.certificate_count, job.has_bundle) == (3, 0, False)
    assert not Certificate.objects.exists()


def test_a_csr_key_already_certified_for_another_device_is_refused_for_its_row(acme: Any) -> None:
    key = p256()
    issue_certificate(create_device(acme, "owner"), key.public_key())
    job = run_import(acme, _small_fleet(3, {2: key}), issue_certs=True)
    assert _errors(job) == {4: ("public_key_in_use", "csr")}
    assert job.created_count == 2 and not Device.objects.filter(name="node-2").exists()


def test_a_csr_key_revoked_for_key_compromise_is_refused_for_its_row(acme: Any) -> None:
    from pki.revocation import revoke_certificate

    key = p256()
    revoke_certificate(issue_certificate(create_device(acme, "lost"), key.public_key()), "keyCompromise")
    job = run_import(acme, _small_fleet(3, {1: key}), issue_certs=True)
    assert _errors(job) == {3: ("public_key_compromised", "csr")}
    assert (job.created_count, job.certificate_count) == (2, 2)


def test_two_rows_with_the_same_csr_key_are_refused_after_the_first(acme: Any) -> None:
    key = p256()
    job = run_import(acme, _small_fleet(3, {0: key, 2: key}), issue_certs=True)
    assert _errors(job) == {4: ("public_key_in_use", "csr")}


# Reading files --------------------------------------------------------------------------------


def test_csv_rows_are_numbered_as_a_spreadsheet_shows_them(acme: Any) -> None:
    # Row 1 the header, row 3 blank, row 4 a quoted cell over two lines, row 5 bad.
    data = b'name,display_name\nok-1,One\n\nok-2,"two\nlines"\nbad name,x\n'
    job = run_import(acme, data)
    assert _errors(job) == {5: ("invalid_device_name", "name")}
    assert Device.objects.get(name="ok-2").display_name == "two\nlines"


def test_json_rows_are_numbered_from_one(acme: Any) -> None:
    data = json.dumps([{"name": "j-1"}, {"name": "bad name"}, "not an object",
                       {"name": "j-4", "colour": "red"}, {"name": "j-5", "tags": "a;b", "attributes": {"k": 1}}])
    job = run_import(acme, data.encode())
    assert _errors(job) == {2: ("invalid_device_name", "name"), 3: ("invalid_row", None),
                            4: ("unknown_field", "colour")}
    assert Device.objects.get(name="j-5").attributes == {"k": 1}


def test_a_semicolon_separated_file_with_a_byte_order_mark_is_read(acme: Any) -> None:
    job = run_import(acme, "\ufeffname;display_name\nsemi-1;Eins\n".encode())
    assert job.created_count == 1 and Device.objects.get(name="semi-1").display_name == "Eins"


def test_attr_columns_win_over_the_attributes_json(acme: Any) -> None:
    data = csv_bytes([{"name": "a-1", "attributes": '{"site": "south", "floor": 2}', "attr.site": "north"}])
    run_import(acme, data)
    assert Device.objects.get(name="a-1").attributes == {"site": "north", "floor": 2}


@pytest.mark.parametrize(("value", "field"), [
    ({"display_name": "nul\x00inside"}, "display_name"),
    ({"tags": ["ok", "nul\x00"]}, "tags"),
    ({"attributes": {"k": "nul\x00"}}, "attributes"),
])
def test_a_nul_character_is_refused_for_its_row(acme: Any, value: dict[str, Any], field: str) -> None:
    job = run_import(acme, json.dumps([{"name": "n-1", **value}, {"name": "n-2"}]).encode())
    assert _errors(job) == {1: ("invalid", field)} and job.created_count == 1


def test_attributes_with_nan_are_refused_for_their_row(acme: Any) -> None:
    data = b'[{"name": "f-1", "attributes": {"t": NaN}}, {"name": "f-2", "attributes": {"t": 1.5}}]'
    job = run_import(acme, data)
    assert _errors(job) == {1: ("invalid_attributes", "attributes")}
    assert Device.objects.get(name="f-2").attributes == {"t": 1.5}


@pytest.mark.parametrize(("data", "code"), [
    (b"display_name\nx\n", "invalid_header"),
    (b"name,colour\nx,red\n", "invalid_header"),
    (b"name,name\nx,y\n", "invalid_header"),
    (b"name\n\xff\xfe\n", "invalid_encoding"),
    (b'name,display_name\nx,"never closed\n', "invalid_csv"),
    (b"", "no_rows"),
    (b"name\n", "no_rows"),
    (b'[{"name": "x"}', "invalid_json"),
    (b'{"name": "x"}', "invalid_json"),
    (b"[]", "no_rows"),
    (b'[{"name": "x", "attributes": {"n": ' + b"9" * 5000 + b"}}]", "invalid_json"),
])
def test_a_file_that_cannot_be_read_is_refused_as_a_whole(acme: Any, data: bytes, code: str) -> None:
    with pytest.raises(ValidationError) as refused:
        submit_import(acme, data)
    assert refused.value.error_dict["file"][0].code == code
    assert not ImportJob.objects.exists()


def test_a_file_over_the_row_limit_is_refused(acme: Any, settings: Any) -> None:
    settings.ROOST_IMPORT_MAX_ROWS = 3
    with pytest.raises(ValidationError) as refused:
        submit_import(acme, _small_fleet(4, {}))
    assert refused.value.error_dict["file"][0].code == "too_many_rows"


def test_a_file_with_csrs_needs_issue_certs(acme: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        submit_import(acme, _small_fleet(2, {1: p256()}))
    assert refused.value.error_dict["issue_certs"][0].code == "csr_needs_issue_certs"


# Audit, storage, claiming, failures -----------------------------------------------------------


def test_every_device_and_certificate_is_audited_and_announced_as_a_single_create_is(acme: Any) -> None:
    from devices.audit import Actor

    job = run_import(acme, _small_fleet(3, {}), issue_certs=True, actor=Actor.api_key("api-key:factory"))
    creates = AuditEvent.objects.filter(action="device.create", tenant=acme)
    assert sorted(creates.values_list("target_repr", flat=True)) == ["acme/node-0", "acme/node-1", "acme/node-2"]
    assert set(creates.values_list("actor_label", flat=True)) == {"api-key:factory"}
    assert creates.get(target_repr="acme/node-1").after["name"] == "node-1"
    assert AuditEvent.objects.filter(action="certificate.issue", actor_label="api-key:factory").count() == 3
    assert ChangeEvent.objects.filter(kind="device", op="created").count() == 3
    issued = ChangeEvent.objects.filter(kind="certificate", op="issued")
    assert {event.payload["fingerprint"] for event in issued} == set(
        Certificate.objects.values_list("fingerprint", flat=True))
    assert AuditEvent.objects.filter(action__in=["device.import.submit", "device.import.finish"],
                                     target_id=str(job.pk)).count() == 2


def test_the_uploaded_file_and_the_bundle_stay_in_the_data_directory_for_the_owner_only(
        acme: Any, import_data_dir: Path) -> None:  # noqa: F811
    job = run_import(acme, _small_fleet(2, {}), issue_certs=True)
    folder = job_dir(job.pk)
    assert folder.parent.parent == import_data_dir
    assert {path.name for path in folder.iterdir()} == {"input.csv", "bundle.zip"}
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "bundle.zip").stat().st_mode & 0o777 == 0o600


def test_a_job_runs_once_however_often_it_is_queued(acme: Any) -> None:
    job = submit_import(acme, _small_fleet(2, {}))
    assert run_import_task(str(job.pk)) == ImportJobState.DONE
    assert run_import_task(str(job.pk)) == "not pending"
    assert claim_job(job.pk) is None
    assert Device.objects.count() == 2


def test_progress_is_saved_after_every_chunk(acme: Any) -> None:
    seen: list[tuple[int, int]] = []

    def progress(job: ImportJob) -> None:
        seen.append((job.done, ImportJob.objects.get(pk=job.pk).done))

    job = submit_import(acme, _small_fleet(CHUNK_ROWS * 2 + 5, {}))
    run_job(claim_job(job.pk), progress=progress)
    assert seen == [(CHUNK_ROWS, CHUNK_ROWS), (CHUNK_ROWS * 2, CHUNK_ROWS * 2),
                    (CHUNK_ROWS * 2 + 5, CHUNK_ROWS * 2 + 5)]


def test_a_job_fails_as_a_whole_with_the_reason_when_the_ca_key_is_missing(acme: Any, import_data_dir: Path) -> None:  # noqa: F811
    ca = active_issuing_ca(acme)
    (import_data_dir / "pki" / "ca" / ca.key_file).unlink()
    job = run_import(acme, _small_fleet(3, {}), issue_certs=True)
    stored = ImportJob.objects.get(pk=job.pk)
    assert stored.state == ImportJobState.FAILED and "CA key file" in stored.message
    assert stored.finished is not None and not Device.objects.exists()


def test_a_chunk_whose_bulk_insert_conflicts_is_imported_row_by_row(acme: Any) -> None:
    """Another writer creating one of the chunk's devices between the check and the insert is
    played here by a device inserted just before the chunk's INSERT, in its transaction."""
    fired: list[bool] = []

    def interfere(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not fired and sql.startswith('INSERT INTO "devices_device"'):
            fired.append(True)
            Device.objects.create(tenant=acme, name="node-1")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(interfere):
        job = run_import(acme, _small_fleet(4, {}), issue_certs=True)
    assert fired and job.state == ImportJobState.DONE, job.message
    assert (job.created_count, job.failed, job.certificate_count) == (4, 0, 4)
    assert len([name for name in bundle_entries(bundle_file(job)) if name.endswith("device.key")]) == 4


def test_pruning_deletes_old_jobs_with_their_files_and_fails_jobs_whose_worker_died(acme: Any) -> None:
    old = run_import(acme, _small_fleet(1, {}), issue_certs=True)
    stuck = submit_import(acme, csv_bytes([{"name": "late"}]))
    claim_job(stuck.pk)
    long_ago = timezone.now() - timedelta(days=30)
    ImportJob.objects.filter(pk=old.pk).update(created=long_ago)
    ImportJob.objects.filter(pk=stuck.pk).update(updated=timezone.now() - timedelta(hours=2))
    assert prune_jobs() == 1
    assert not ImportJob.objects.filter(pk=old.pk).exists() and not os.path.exists(job_dir(old.pk))
    stuck_now = ImportJob.objects.get(pk=stuck.pk)
    assert stuck_now.state == ImportJobState.FAILED and "worker stopped" in stuck_now.message


@pytest.mark.parametrize("name", ["line-3:sensor.042", "s" + "-long" * 25])
def test_an_imported_certificate_follows_the_profile_of_a_single_issue(acme: Any, name: str) -> None:
    """The import signs with pki's one profile, the CA key loaded once per job; for the same
    device and key, everything but serial and signature matches a single issuance."""
    from devices.audit import Actor
    from devices.import_writes import BatchIssuer
    from pki.issuance import _build

    issuer = BatchIssuer(acme, Actor.system())
    key = p256().public_key()
    device = Device(tenant=acme, name=name)
    imported = issuer.certificate_for(device.name, key, device)
    single = _build(device, key, issuer.ca, issuer.days)
    assert imported.subject == single.subject and imported.issuer == single.issuer
    assert imported.public_key() == single.public_key()
    assert [(ext.oid, ext.critical, ext.value) for ext in imported.extensions] == \
        [(ext.oid, ext.critical, ext.value) for ext in single.extensions]
    lifetime = imported.not_valid_after_utc - imported.not_valid_before_utc
    assert abs(lifetime - (single.not_valid_after_utc - single.not_valid_before_utc)) <= timedelta(seconds=2)
    assert imported.signature_hash_algorithm.name == single.signature_hash_algorithm.name
    imported.verify_directly_issued_by(load_cert(issuer.ca.certificate_pem))


def test_pruning_removes_the_files_of_jobs_deleted_with_their_tenant(globex: Any) -> None:
    from devices.services import delete_tenant

    job = run_import(globex, _small_fleet(1, {}), issue_certs=True)
    folder = job_dir(job.pk)
    delete_tenant(globex)
    assert folder.exists()
    hours_ago = (timezone.now() - timedelta(hours=2)).timestamp()
    os.utime(folder, (hours_ago, hours_ago))
    prune_jobs()
    assert not folder.exists()


def test_a_row_with_an_rsa_csr_gets_the_key_usages_of_an_rsa_key(acme: Any) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    job = run_import(acme, _small_fleet(2, {1: key}), issue_certs=True)
    leaf = load_cert(bundle_entries(bundle_file(job))["node-1/device.pem"])
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert leaf.public_key() == key.public_key() and usage.key_encipherment and not usage.key_agreement
