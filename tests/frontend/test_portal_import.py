"""The bulk import pages: upload (bad input at the field, nothing queued), the job page and its
progress fragment, the per-row errors and the bundle. The job is run in-process here exactly as
the worker runs it; the browser test runs it in a real Celery worker."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from devices.imports import claim_job, run_job
from devices.models import Device, ImportJob, Membership, Role
from tests.devices.import_support import csv_bytes, import_data_dir  # noqa: F401 - the job files' own folder

pytestmark = pytest.mark.django_db

IMPORT = "/portal/t/acme/devices/-/import/"



@pytest.fixture
def operator(acme: Any, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_user("otto", password="x-password-1")
    Membership.objects.create(user=user, tenant=acme, role=Role.OPERATOR)
    client = Client()
    client.force_login(user)
    return client


def _upload(client: Client, data: bytes, name: str = "fleet.csv", **fields: str) -> Any:
    return client.post(IMPORT, {"file": SimpleUploadedFile(name, data, content_type="text/csv"), **fields})


def _run(job: ImportJob) -> ImportJob:
    claimed = claim_job(job.pk)
    assert claimed is not None
    return run_job(claimed)


def test_an_upload_queues_a_job_and_opens_its_page(operator: Client, acme: Any) -> None:
    response = _upload(operator, csv_bytes([{"name": f"imp-{i}"} for i in range(3)]), issue_certs="on")
    job = ImportJob.objects.get(tenant=acme)
    assert response.status_code == 302 and response["Location"] == f"{IMPORT}{job.pk}/"
    assert (job.total, job.issue_certs, job.input_name) == (3, True, "fleet.csv")
    page = operator.get(response["Location"]).content.decode()
    assert 'id="import-bar"' in page and 'value="0" max="3"' in page
    assert f'hx-get="{IMPORT}{job.pk}/progress/"' in page and 'hx-trigger="every 1s"' in page


@pytest.mark.parametrize(("data", "fields", "field"), [
    (b"", {}, "file"),
    (b"display_name\nno name column\n", {}, "file"),
    (b"name,csr\nx,-----BEGIN CERTIFICATE REQUEST-----\n", {}, "issue_certs"),
])
def test_a_file_that_cannot_be_imported_is_refused_at_the_field_and_queues_nothing(
        operator: Client, data: bytes, fields: dict[str, str], field: str) -> None:
    response = _upload(operator, data, **fields)
    assert response.status_code == 200
    assert field in response.context["form"].errors, response.context["form"].errors
    assert not ImportJob.objects.exists()


def test_a_missing_file_is_refused_at_the_field(operator: Client) -> None:
    response = operator.post(IMPORT, {"issue_certs": "on"})
    assert "file" in response.context["form"].errors and not ImportJob.objects.exists()


def test_a_too_large_file_is_refused(operator: Client, settings: Any) -> None:
    settings.ROOST_IMPORT_MAX_BODY = 1024
    response = _upload(operator, csv_bytes([{"name": f"big-{i:05d}"} for i in range(200)]))
    assert "larger than 1024 bytes" in " ".join(response.context["form"].errors["file"])
    assert not ImportJob.objects.exists()


def test_the_finished_job_shows_full_progress_the_failed_rows_and_the_bundle(operator: Client, acme: Any) -> None:
    rows = [{"name": "good-1"}, {"name": "bad name"}, {"name": "good-2"}]
    _upload(operator, csv_bytes(rows), issue_certs="on")
    job = _run(ImportJob.objects.get(tenant=acme))
    assert (job.state, job.done, job.failed) == ("done", 3, 1)
    fragment = operator.get(f"{IMPORT}{job.pk}/progress/")
    assert fragment["Cache-Control"] == "no-store"
    body = fragment.content.decode()
    assert 'value="3" max="3"' in body and "hx-get" not in body  # finished: the polling stops
    assert 'id="import-errors"' in body and "bad name" in body and "<td>3</td>" in body
    bundle = operator.get(f"{IMPORT}{job.pk}/bundle/")
    assert bundle.status_code == 200 and bundle["Cache-Control"] == "no-store"
    names = zipfile.ZipFile(io.BytesIO(b"".join(bundle.streaming_content))).namelist()
    assert "good-1/device.key" in names and not any(n.startswith("bad") for n in names)
    assert set(Device.objects.filter(tenant=acme).values_list("name", flat=True)) == {"good-1", "good-2"}


def test_a_job_without_certificates_has_no_bundle(operator: Client, acme: Any) -> None:
    _upload(operator, csv_bytes([{"name": "plain"}]))
    job = _run(ImportJob.objects.get(tenant=acme))
    assert "download-bundle" not in operator.get(f"{IMPORT}{job.pk}/").content.decode()
    assert operator.get(f"{IMPORT}{job.pk}/bundle/").status_code == 404


def test_a_running_jobs_bundle_is_not_served(operator: Client, acme: Any) -> None:
    _upload(operator, csv_bytes([{"name": "later"}]), issue_certs="on")
    job = ImportJob.objects.get(tenant=acme)
    assert operator.get(f"{IMPORT}{job.pk}/bundle/").status_code == 404


def test_a_job_of_another_tenant_is_not_found(operator: Client, globex: Any) -> None:
    from devices.imports import submit_import

    foreign = submit_import(globex, csv_bytes([{"name": "theirs"}]))
    for suffix in ("", "progress/", "bundle/"):
        assert operator.get(f"{IMPORT}{foreign.pk}/{suffix}").status_code == 404


def test_a_viewer_sees_no_import_button(bob: Any) -> None:
    client = Client()
    client.force_login(bob)
    assert 'id="import-devices"' not in client.get("/portal/t/acme/devices/").content.decode()


def test_the_import_page_lists_the_latest_jobs_of_the_tenant_only(operator: Client, acme: Any, globex: Any) -> None:
    from devices.imports import submit_import

    _upload(operator, csv_bytes([{"name": "mine"}]), name="mine.csv")
    foreign = submit_import(globex, csv_bytes([{"name": "theirs"}]), filename="theirs.csv")
    mine = ImportJob.objects.get(tenant=acme)
    body = operator.get(IMPORT).content.decode()
    assert f'href="{IMPORT}{mine.pk}/"' in body and "mine.csv" in body
    assert str(foreign.pk) not in body and "theirs.csv" not in body
