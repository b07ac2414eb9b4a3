"""Bulk provisioning on the running platform: the web service queues the import, a real
Celery worker (`celery -A roost worker`, as `roost up` starts it) runs it, the bundle's
certificates verify against the CA and a device from it connects to the broker over mTLS."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker.integration.platform_harness import (
    REPO,
    Bundle,
    Platform,
    PlatformBroker,
    PlatformWeb,
    connack_code,
    device_client,
    eventually,
)
from tests.devices.import_support import GROUP, csv_bytes, fleet_with_ten_bad_rows
from tests.pki.helpers import load_cert, openssl_verify

TENANT = "it-import"


class Worker:
    """`python -m celery -A roost worker` on the platform's database and queue."""

    def __init__(self, platform: Platform) -> None:
        self.log_path = platform.data_dir / "worker.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "roost", "worker", "--pool", "threads", "--concurrency", "2",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO, env=platform.env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def wait_ready(self, timeout: float = 60.0) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            text = self.log_path.read_text()
            if " ready." in text:
                assert "devices.tasks.run_import" in text, "the import task is not registered:\n" + text
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the Celery worker did not start:\n" + self.log_path.read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def worker(platform: Platform) -> Iterator[Worker]:
    process = Worker(platform)
    try:
        yield process.wait_ready()
    finally:
        process.stop()


@pytest.fixture(scope="module", autouse=True)
def tenant(platform: Platform) -> str:
    platform.call("tenant_create", slug=TENANT)
    made = platform.manage("shell", "-c", "from devices.models import Tenant; from devices.services import "
                           f"create_group; create_group(Tenant.objects.get(slug={TENANT!r}), {GROUP!r})")
    assert made.returncode == 0, made.stderr
    return TENANT


@pytest.fixture(scope="module")
def operator_key(platform: Platform) -> str:
    return str(platform.call("api_key_create", tenant=TENANT, role="operator", name="factory"))


def _submit(web: PlatformWeb, key: str, data: bytes, query: str = "?issue_certs=true") -> dict[str, Any]:
    status, body, headers = web.request("POST", f"/api/v1/tenants/{TENANT}/devices/import{query}", key, data,
                                        headers={"Content-Type": "text/csv"})
    assert status == 202, body
    assert headers["Location"] == body["url"]
    return body


def _finished(web: PlatformWeb, key: str, job: dict[str, Any], worker: Worker, timeout: float = 180) -> dict[str, Any]:
    path = job["url"].split(web.url, 1)[1]

    def state() -> dict[str, Any] | None:
        status, body, _ = web.request("GET", path, key)
        assert status == 200, body
        return body if body["state"] in ("done", "failed") else None

    try:
        return eventually(state, timeout=timeout, interval=0.5)
    except AssertionError:
        raise AssertionError("the job did not finish; worker log:\n" + worker.log_path.read_text()[-4000:]) from None


def _connects(broker: PlatformBroker, folder: Path, name: str, clients: Any) -> None:
    bundle = Bundle(folder, TENANT, name, "", "")
    # The new certificate reaches the broker through the change feed.
    assert eventually(lambda: connack_code(broker.port, bundle.ca, bundle.cert, bundle.key, name) == 0)
    client = clients(device_client(broker, bundle)).connect()
    client.subscribe(f"devices/{name}/#", qos=1)
    client.publish(f"devices/{name}/hello", b"imported", qos=1)
    assert client.expect(1)[0].payload == b"imported"


def test_a_thousand_rows_run_in_the_worker_and_the_bundle_connects_over_mtls(
        web: PlatformWeb, broker: PlatformBroker, worker: Worker, operator_key: str, tmp_path: Path,
        clients: Any) -> None:
    data, expected = fleet_with_ten_bad_rows(1000)
    job = _finished(web, operator_key, _submit(web, operator_key, data), worker)
    assert job["state"] == "done", job["message"]
    assert (job["total"], job["done"], job["created"], job["existing"], job["failed"]) == (1000, 1000, 990, 0, 10)
    assert {error["row"]: (error["code"], error["field"]) for error in job["errors"]} == expected
    print("timings:", job["timings"])

    status, raw, headers = web.request("GET", job["bundle"].split(web.url, 1)[1], operator_key,
                                       headers={"Accept": "application/zip"})
    assert status == 200 and headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        archive.extractall(tmp_path)
    folders = sorted(path for path in tmp_path.iterdir() if path.is_dir())
    assert len(folders) == 990
    root = load_cert((folders[0] / "ca.pem").read_bytes())
    issuing = load_cert((folders[0] / "chain.pem").read_bytes())
    issuing.verify_directly_issued_by(root)
    for folder in folders:
        load_cert((folder / "device.pem").read_bytes()).verify_directly_issued_by(issuing)
    checked = openssl_verify(tmp_path, root=(folders[0] / "ca.pem").read_text(),
                             leaf=(folders[0] / "device.pem").read_text(),
                             untrusted=(folders[0] / "chain.pem").read_text())
    assert checked.returncode == 0, checked.stderr
    _connects(broker, tmp_path / "sensor-0007", "sensor-0007", clients)

    again = _finished(web, operator_key, _submit(web, operator_key, data), worker)
    assert (again["created"], again["existing"], again["failed"], again["bundle"]) == (0, 990, 10, None)


def test_the_cli_import_writes_certificates_that_connect(platform: Platform, broker: PlatformBroker,
                                                        tmp_path: Path, clients: Any) -> None:
    source = tmp_path / "three.csv"
    source.write_bytes(csv_bytes([{"name": f"cli-{i}", "attr.site": "north"} for i in range(3)]))
    out = tmp_path / "out"
    done = platform.manage("device", "import", str(source), "--tenant", TENANT, "--issue-certs", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "3 created" in done.stdout and "3/3 rows" in done.stderr
    assert (out / "cli-1" / "device.key").stat().st_mode & 0o777 == 0o600
    _connects(broker, out / "cli-1", "cli-1", clients)


def test_a_viewer_key_cannot_queue_an_import(platform: Platform, web: PlatformWeb) -> None:
    viewer = str(platform.call("api_key_create", tenant=TENANT, role="viewer", name="watcher"))
    status, body, _ = web.request("POST", f"/api/v1/tenants/{TENANT}/devices/import", viewer, b"name\nx\n",
                                  headers={"Content-Type": "text/csv"})
    assert status == 403 and body["code"] == "role_required"


def test_a_malformed_multipart_upload_gets_an_error_in_the_api_shape_from_the_real_server(
        operator_key: str, web: PlatformWeb) -> None:
    # Twisted, under daphne, used to answer these itself: a bare 400 with no body.
    for body in (b"", b"--x\r\nnot a part\r\n", b"--x--\r\n"):
        status, answer, _ = web.request("POST", f"/api/v1/tenants/{TENANT}/devices/import", operator_key, body,
                                        headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert status == 400, (body, status, answer)
        assert isinstance(answer, dict) and answer["code"] and answer["errors"], answer
