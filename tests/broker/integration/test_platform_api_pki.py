"""The PKI API against the running platform: a certificate issued through the API (generated
key, zip bundle) connects over mTLS; revoking through the API disconnects the device within a
second and keeps it out."""

from __future__ import annotations

import io
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.broker.integration.platform_harness import (
    REVOKED_IN_HANDSHAKE,
    Bundle,
    Platform,
    PlatformBroker,
    PlatformWeb,
    connack_code,
    device_client,
    eventually,
    refusal,
)

TENANT = "it-api-pki"
ADMINISTRATIVE_ACTION = 0x98
BANNED = 0x8A  # CONNACK for a revoked certificate (an administrative act, not bad credentials)
REVOKED_ON_3_1_1 = 5  # 3.1.1 has no "banned": not authorized


@pytest.fixture(scope="module", autouse=True)
def registry(platform: Platform) -> dict[str, Bundle]:
    platform.call("tenant_create", slug=TENANT)
    platform.call("device_create", tenant=TENANT, name="api-bundle")
    return {"revoked": platform.device(TENANT, "revoked-by-api"), "bystander": platform.device(TENANT, "bystander")}


@pytest.fixture(scope="module")
def operator_key(platform: Platform) -> str:
    return str(platform.call("api_key_create", tenant=TENANT, role="operator", name="it-operator"))


def _openssl_serial(bundle: Bundle) -> str:
    """The serial as `openssl x509 -serial` prints it, the form people paste."""
    printed = subprocess.run(["openssl", "x509", "-serial", "-noout", "-in", bundle.cert], capture_output=True,
                             text=True, check=True, timeout=30).stdout.strip()
    assert printed.startswith("serial=")
    return printed


def test_revoking_through_the_api_disconnects_the_device_within_a_second_and_keeps_it_out(
        web: PlatformWeb, broker: PlatformBroker, registry: dict[str, Bundle], operator_key: str,
        clients: Any) -> None:
    doomed, bystander = registry["revoked"], registry["bystander"]
    device = clients(device_client(broker, doomed)).connect()
    neighbour = clients(device_client(broker, bystander)).connect()
    status, body, _ = web.request("POST", f"/api/v1/tenants/{TENANT}/certificates/{_openssl_serial(doomed)}/revoke",
                                  operator_key, {"reason": "keyCompromise"})
    answered = time.monotonic()
    assert status == 200, body
    assert (body["serial"], body["status"]) == (doomed.serial, "revoked")
    assert device.disconnected.wait(1.0), "still connected a second after the API answered"
    print(f"disconnected {time.monotonic() - answered:.3f}s after the API answered")
    assert device.disconnect_reason.value == ADMINISTRATIVE_ACTION
    args = (broker.port, doomed.ca, doomed.cert, doomed.key, doomed.name)
    # Refused at CONNECT until the new CRL reaches the TLS context (within the same moment),
    # then in the handshake itself.
    assert refusal(*args) in (REVOKED_ON_3_1_1, REVOKED_IN_HANDSHAKE)
    assert refusal(*args, level=5) in (BANNED, REVOKED_IN_HANDSHAKE)
    assert eventually(lambda: refusal(*args, level=5) == REVOKED_IN_HANDSHAKE)
    assert not neighbour.disconnected.is_set()


def test_a_zip_bundle_issued_through_the_api_connects_over_mtls(
        web: PlatformWeb, broker: PlatformBroker, operator_key: str, tmp_path: Path, clients: Any) -> None:
    status, raw, headers = web.request("POST", f"/api/v1/tenants/{TENANT}/devices/api-bundle/certificates",
                                       operator_key, {"days": 7}, headers={"Accept": "application/zip"})
    assert status == 201, raw
    assert headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        archive.extractall(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"ca.pem", "device.pem", "device.key", "chain.pem"}
    serial = headers["Location"].rstrip("/").rsplit("/", 1)[1]
    bundle = Bundle(tmp_path, TENANT, "api-bundle", serial, "")
    # The new certificate reaches the broker through the change feed.
    assert eventually(lambda: connack_code(broker.port, bundle.ca, bundle.cert, bundle.key, "api-bundle") == 0)
    client = clients(device_client(broker, bundle)).connect()
    client.publish("devices/api-bundle/hello", b"from the API bundle", qos=1)
