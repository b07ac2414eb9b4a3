"""The registry API against the running platform: a kick through the API disconnects a live
mTLS device within a second (MQTT 5: DISCONNECT 0x98); disabling it through the API does too
and keeps it out; presence and the connection log show what the broker saw."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.broker.integration.platform_harness import (
    Bundle,
    Platform,
    PlatformBroker,
    PlatformWeb,
    device_client,
    eventually,
)

TENANT = "it-api-registry"
ADMINISTRATIVE_ACTION = 0x98
NOT_AUTHORIZED = 0x87
DEVICES = f"/api/v1/tenants/{TENANT}/devices"


@pytest.fixture(scope="module", autouse=True)
def registry(platform: Platform) -> dict[str, Bundle]:
    platform.call("tenant_create", slug=TENANT)
    return {name: platform.device(TENANT, name) for name in ("kicked", "disabled", "watched", "bystander")}


@pytest.fixture(scope="module")
def operator_key(platform: Platform) -> str:
    return str(platform.call("api_key_create", tenant=TENANT, role="operator", name="it-registry"))


def _disconnected_within(client: Any, seconds: float, since: float) -> float:
    assert client.disconnected.wait(seconds), f"still connected {seconds}s after the API answered"
    return time.monotonic() - since


def test_a_kick_through_the_api_disconnects_the_device_within_a_second(
        web: PlatformWeb, broker: PlatformBroker, registry: dict[str, Bundle], operator_key: str,
        clients: Any) -> None:
    device = clients(device_client(broker, registry["kicked"])).connect()
    bystander = clients(device_client(broker, registry["bystander"])).connect()
    status, body, _ = web.request("POST", f"{DEVICES}/kicked/kick", operator_key)
    answered = time.monotonic()
    assert status == 202, body
    assert body["kicked"] is True
    _disconnected_within(device, 1.0, answered)
    assert device.disconnect_reason.value == ADMINISTRATIVE_ACTION
    assert not bystander.disconnected.is_set()


def test_disabling_through_the_api_disconnects_the_device_and_refuses_its_return(
        web: PlatformWeb, broker: PlatformBroker, registry: dict[str, Bundle], operator_key: str,
        clients: Any) -> None:
    device = clients(device_client(broker, registry["disabled"])).connect()
    status, body, _ = web.request("PATCH", f"{DEVICES}/disabled", operator_key, {"enabled": False})
    answered = time.monotonic()
    assert (status, body["enabled"]) == (200, False)
    _disconnected_within(device, 1.0, answered)
    assert device.disconnect_reason.value == ADMINISTRATIVE_ACTION
    again = clients(device_client(broker, registry["disabled"]))
    again.connect(wait=False)
    assert again.connected.wait(5), "no CONNACK"
    assert again.connack[1].value == NOT_AUTHORIZED


def test_a_connected_device_is_listed_online_with_its_certificate_and_connection(
        web: PlatformWeb, broker: PlatformBroker, registry: dict[str, Bundle], operator_key: str,
        clients: Any) -> None:
    bundle = registry["watched"]
    status, body, _ = web.request("GET", f"{DEVICES}/?online=true", operator_key)
    assert status == 200 and "watched" not in [d["name"] for d in body["results"]]
    clients(device_client(broker, bundle)).connect()

    def listed_online() -> Any:
        _, page, _ = web.request("GET", f"{DEVICES}/?online=true&prefix=watched", operator_key)
        return page["results"]

    [device] = eventually(listed_online)
    presence = device["presence"]
    assert (presence["online"], presence["protocol_version"], presence["address"]) == (True, 5, "127.0.0.1")
    assert presence["certificate_serial"] == bundle.serial

    def connections() -> Any:
        _, log, _ = web.request("GET", f"{DEVICES}/watched/connections", operator_key)
        return log["results"]

    latest = eventually(connections)[0]
    assert (latest["event"], latest["certificate_serial"], latest["protocol_version"]) == (
        "connected", bundle.serial, 5)
