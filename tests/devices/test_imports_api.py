"""The import API: `POST devices/import` (CSV, JSON or multipart) answers 202 with a job that
Celery runs (eagerly here, in the request; tests/broker/integration runs a real worker),
`jobs/` reports it and `jobs/{id}/bundle` serves its zip. Roles, limits and bad input."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from devices.imports import claim_job, submit_import
from devices.models import Device, ImportJob
from tests.devices.import_support import (
    csv_bytes,
    import_data_dir,  # noqa: F401 - autouse fixture
)

pytestmark = pytest.mark.django_db

IMPORT = "/api/v1/tenants/acme/devices/import"
JOBS = "/api/v1/tenants/acme/jobs/"
FLEET = csv_bytes([{"name": f"api-{i}", "attr.site": "north"} for i in range(5)] + [{"name": "bad name"}])


@pytest.fixture(autouse=True)
def eager_tasks() -> Iterator[None]:
    """`run_import.delay` runs the task at once, in the request (Celery's eager mode)."""
    from roost.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def operator(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, "operator"))


def _post(client: Any, body: bytes = FLEET, content_type: str = "text/csv", query: str = "") -> Any:
    return client.post(IMPORT + query, data=body, content_type=content_type)


def _zip(response: Any) -> dict[str, bytes]:
    data = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


# Importing ------------------------------------------------------------------------------------


def test_an_operator_imports_a_csv_body_and_gets_202_with_the_job_and_its_location(operator: Any) -> None:
    response = _post(operator)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "pending" and body["total"] == 6 and body["format"] == "csv"
    assert response["Location"] == body["url"] and body["url"].endswith(f"/api/v1/tenants/acme/jobs/{body['id']}/")
    assert Device.objects.filter(name__startswith="api-").count() == 5


def test_the_job_reports_counts_and_the_bad_rows_with_their_row_numbers(operator: Any) -> None:
    job_url = _post(operator)["Location"]
    body = operator.get(job_url).json()
    assert body["state"] == "done"
    assert (body["done"], body["created"], body["existing"], body["failed"]) == (6, 5, 0, 1)
    assert body["errors"] == [{"row": 7, "name": "bad name", "code": "invalid_device_name", "field": "name",
                               "message": body["errors"][0]["message"]}]
    assert set(body["timings"]) == {"parse", "devices", "certificates", "bundle", "total"}
    assert body["created_by"] == "api-key:operator-key" and body["bundle"] is None


def test_a_json_body_is_imported(operator: Any) -> None:
    rows = [{"name": "j-1", "tags": ["x"], "attributes": {"floor": 2}}, {"name": "j-2"}]
    response = _post(operator, json.dumps(rows).encode(), "application/json")
    assert response.status_code == 202 and response.json()["format"] == "json"
    assert Device.objects.get(name="j-1").attributes == {"floor": 2}


def test_a_multipart_upload_may_ask_for_certificates_in_a_form_field(operator: Any) -> None:
    upload = SimpleUploadedFile("fleet.csv", FLEET, content_type="text/csv")
    response = operator.post(IMPORT, {"file": upload, "issue_certs": "true"}, format="multipart")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["file_name"] == "fleet.csv" and body["issue_certs"] is True
    job = operator.get(body["url"]).json()
    assert job["certificates"] == 5 and job["bundle"].endswith(f"/jobs/{body['id']}/bundle/")


def test_the_bundle_of_a_finished_job_is_a_zip_of_each_new_devices_files(operator: Any) -> None:
    job = operator.get(_post(operator, query="?issue_certs=true")["Location"]).json()
    response = operator.get(job["bundle"], HTTP_ACCEPT="application/zip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip" and response["Cache-Control"] == "no-store"
    assert "attachment" in response["Content-Disposition"]
    entries = _zip(response)
    assert {name for name in entries if name.startswith("api-0/")} == {
        "api-0/device.pem", "api-0/device.key", "api-0/ca.pem", "api-0/chain.pem"}
    assert "manifest.csv" in entries and not any(name.startswith("bad name") for name in entries)


def test_a_body_larger_than_django_keeps_in_memory_is_read_as_a_stream(operator: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    big = csv_bytes([{"name": f"big-{i}", "display_name": "x" * 150} for i in range(100)])
    assert len(big) > 4096
    assert _post(operator, big).status_code == 202
    assert Device.objects.filter(name__startswith="big-").count() == 100


# Refusals -------------------------------------------------------------------------------------


def test_a_body_over_the_import_limit_is_refused_with_413(operator: Any, settings: Any) -> None:
    settings.ROOST_IMPORT_MAX_BODY = 2048
    response = _post(operator, b"name\n" + b"device-name-0001\n" * 300)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large" and not ImportJob.objects.exists()


@pytest.mark.parametrize(("body", "content_type", "code"), [
    (b'name,display_name\nx,"never closed\n', "text/csv", "invalid_csv"),
    (b"hostname\nx\n", "text/csv", "invalid_header"),
    (b'[{"name": "x"}', "application/json", "invalid_json"),
    (b'{"devices": 3}', "application/json", "invalid_json"),
    (b"name\n\xff\n", "text/csv", "invalid_encoding"),
])
def test_a_malformed_file_is_a_400_in_the_shared_error_shape(operator: Any, body: bytes, content_type: str,
                                                              code: str) -> None:
    response = _post(operator, body, content_type)
    assert response.status_code == 400
    error = response.json()
    assert (error["code"], error["field"]) == (code, "file") and error["message"] and error["errors"]
    assert not ImportJob.objects.exists()


def test_an_empty_body_asks_for_the_file(operator: Any) -> None:
    response = _post(operator, b"")
    assert response.status_code == 400 and response.json()["field"] == "file"


def test_a_body_of_another_media_type_is_refused_with_415(operator: Any) -> None:
    assert _post(operator, FLEET, "text/plain").status_code == 415


def test_issue_certs_must_be_a_boolean(operator: Any) -> None:
    response = _post(operator, query="?issue_certs=perhaps")
    assert response.status_code == 400 and response.json()["field"] == "issue_certs"


# Roles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("operator", 202), ("admin", 202)])
def test_importing_needs_the_operator_role(acme: Any, make_api_key: Any, api: Any, role: str, status: int) -> None:
    assert _post(api(make_api_key(acme, role))).status_code == status


def test_a_key_of_another_tenant_cannot_import_into_this_one(globex: Any, acme: Any, make_api_key: Any,
                                                              api: Any) -> None:
    response = _post(api(make_api_key(globex, "admin")))
    assert response.status_code == 404 and response.json()["code"] == "tenant_not_found"


def test_an_anonymous_import_is_refused_with_401(acme: Any, api: Any) -> None:
    assert _post(api()).status_code == 401


@pytest.mark.parametrize(("persona", "status"), [("alice", 202), ("bob", 403), ("charlie", 404)])
def test_signed_in_members_import_by_their_membership(request: Any, client: Any, persona: str, status: int,
                                                      acme: Any) -> None:
    client.force_login(request.getfixturevalue(persona))
    assert client.post(IMPORT, data=FLEET, content_type="text/csv").status_code == status


@pytest.mark.parametrize(("role", "status"), [("viewer", 200), ("operator", 200)])
def test_jobs_are_readable_by_every_role(acme: Any, make_api_key: Any, api: Any, role: str, status: int) -> None:
    job = submit_import(acme, FLEET)
    client = api(make_api_key(acme, role))
    listing = client.get(JOBS)
    assert listing.status_code == status and [item["id"] for item in listing.json()["results"]] == [str(job.pk)]
    assert client.get(f"{JOBS}{job.pk}/").status_code == status


def test_jobs_page_by_their_uuid_keys_and_every_job_comes_once(acme: Any, operator: Any) -> None:
    submitted = {str(submit_import(acme, FLEET).pk) for _ in range(5)}
    seen: list[str] = []
    url: str | None = f"{JOBS}?limit=2"
    while url:
        page = operator.get(url)
        assert page.status_code == 200, page.content[:300]
        seen += [item["id"] for item in page.json()["results"]]
        url = page.json()["next"]
    assert sorted(seen) == sorted(submitted)


def test_jobs_of_another_tenant_are_not_found(acme: Any, globex: Any, make_api_key: Any, api: Any) -> None:
    theirs = submit_import(globex, FLEET)
    mine = api(make_api_key(acme, "admin"))
    assert mine.get(f"{JOBS}{theirs.pk}/").status_code == 404
    assert mine.get(f"/api/v1/tenants/globex/jobs/{theirs.pk}/").status_code == 404
    assert mine.get(JOBS).json()["results"] == []


def test_jobs_need_credentials(acme: Any, api: Any) -> None:
    assert api().get(JOBS).status_code == 401


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("operator", 200)])
def test_the_bundle_holds_private_keys_so_viewers_cannot_download_it(acme: Any, make_api_key: Any, api: Any,
                                                                       operator: Any, role: str, status: int) -> None:
    job = operator.get(_post(operator, query="?issue_certs=true")["Location"]).json()
    assert api(make_api_key(acme, role, name=f"{role}-2")).get(job["bundle"]).status_code == status


# The bundle's states --------------------------------------------------------------------------


def test_the_bundle_of_a_job_still_running_is_a_409(acme: Any, operator: Any) -> None:
    pending = submit_import(acme, FLEET, issue_certs=True)
    assert operator.get(f"{JOBS}{pending.pk}/bundle/").status_code == 409
    claim_job(pending.pk)
    response = operator.get(f"{JOBS}{pending.pk}/bundle/", HTTP_ACCEPT="application/zip")
    assert response.status_code == 409 and response.json()["code"] == "job_not_finished"


def test_a_job_without_certificates_has_no_bundle(operator: Any) -> None:
    job = operator.get(_post(operator)["Location"]).json()
    response = operator.get(job["url"] + "bundle/")
    assert response.status_code == 404 and response.json()["code"] == "no_bundle"


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_job_is_a_404_in_the_shared_shape(operator: Any, job_id: str) -> None:
    response = operator.get(f"{JOBS}{job_id}/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_the_schema_documents_the_three_ways_to_send_a_file(admin_client: Any) -> None:
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/tenants/{tenant}/devices/import/"]["post"]
    assert set(operation["requestBody"]["content"]) == {"text/csv", "application/json", "multipart/form-data"}
    assert "202" in operation["responses"] and "413" in operation["responses"]
    bundle = schema["paths"]["/api/v1/tenants/{tenant}/jobs/{id}/bundle/"]["get"]
    assert "application/zip" in bundle["responses"]["200"]["content"] and "409" in bundle["responses"]


def test_a_device_named_import_stays_reachable_beside_the_import_endpoint(acme: Any, make_api_key: Any,
                                                                           api: Any) -> None:
    from devices.services import create_device

    create_device(acme, "import")
    operator = api(make_api_key(acme, "operator"))
    got = operator.get("/api/v1/tenants/acme/devices/import/")
    assert got.status_code == 200 and got.json()["name"] == "import"
    changed = operator.patch("/api/v1/tenants/acme/devices/import", {"display_name": "x"}, format="json")
    assert changed.status_code == 200 and changed.json()["display_name"] == "x"
    assert operator.delete("/api/v1/tenants/acme/devices/import/").status_code == 204
    assert operator.get("/api/v1/tenants/acme/devices/import/").status_code == 404
