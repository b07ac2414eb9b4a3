"""Registry and ACL changes reach the running broker through the change feed, without a restart:
revoked, disabled and tenant-disabled devices are disconnected at once; rules apply live."""

from __future__ import annotations

import ssl
import time
from typing import Any

import pytest

from tests.broker.conftest import Client
from tests.broker.integration.platform_harness import (
    REVOKED_IN_HANDSHAKE,
    Bundle,
    Platform,
    PlatformBroker,
    connack_code,
    device_client,
    eventually,
    refusal,
)

LIVE = "it-live"
OTHER = "it-live-other"
DOOMED = "it-doomed"
ADMINISTRATIVE_ACTION = 0x98


@pytest.fixture(scope="module", autouse=True)
def registry(platform: Platform) -> dict[str, Bundle]:
    for slug in (LIVE, OTHER, DOOMED):
        platform.call("tenant_create", slug=slug)
    names = ["revoked", "disabled", "deleted", "deleted-too", "rotated", "acl-deny", "acl-allow", "acl-qos",
             "bystander", "retainer"]
    bundles = {name: platform.device(LIVE, name) for name in names}
    bundles["doomed"] = platform.device(DOOMED, "doomed")
    bundles["neighbour"] = platform.device(OTHER, "neighbour")
    return bundles


def _refusal(broker: PlatformBroker, bundle: Bundle, clients: Any) -> int:
    client = clients(device_client(broker, bundle))
    client.connect(wait=False)
    assert client.connected.wait(5), "no CONNACK"
    return int(client.connack[1].value)


def _refused_in_tls(broker: PlatformBroker, bundle: Bundle) -> bool:
    return refusal(broker.port, bundle.ca, bundle.cert, bundle.key, bundle.name, level=5) == REVOKED_IN_HANDSHAKE


def _kicked_within(client: Client, seconds: float) -> float:
    started = time.monotonic()
    assert client.disconnected.wait(seconds), f"still connected after {seconds}s"
    return time.monotonic() - started


def _still_connected(client: Client) -> None:
    assert not client.disconnected.is_set()
    client.publish(f"devices/{client.client._client_id.decode()}/alive", b"1", qos=1)


# Disconnecting -------------------------------------------------------------------------------


def test_revoking_a_certificate_disconnects_its_client_within_a_second_and_refuses_its_return(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    device = clients(device_client(broker, registry["revoked"])).connect()
    bystander = clients(device_client(broker, registry["bystander"])).connect()
    platform.call("cert_revoke", serial=registry["revoked"].serial)
    _kicked_within(device, 1.0)
    assert device.disconnect_reason.value == ADMINISTRATIVE_ACTION
    assert eventually(lambda: _refused_in_tls(broker, registry["revoked"]))
    _still_connected(bystander)


def test_disabling_a_device_disconnects_it_within_a_second_and_refuses_its_return(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    device = clients(device_client(broker, registry["disabled"])).connect()
    bystander = clients(device_client(broker, registry["bystander"])).connect()
    platform.call("device_enable", tenant=LIVE, name="disabled", enabled=False)
    _kicked_within(device, 1.0)
    assert device.disconnect_reason.value == ADMINISTRATIVE_ACTION
    assert _refusal(broker, registry["disabled"], clients) == 0x87
    _still_connected(bystander)


def test_disabling_a_tenant_disconnects_its_devices_within_a_second_and_refuses_their_return(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    device = clients(device_client(broker, registry["doomed"])).connect()
    neighbour = clients(device_client(broker, registry["neighbour"])).connect()
    platform.call("tenant_enable", slug=DOOMED, enabled=False)
    _kicked_within(device, 1.0)
    assert device.disconnect_reason.value == ADMINISTRATIVE_ACTION
    assert _refusal(broker, registry["doomed"], clients) == 0x87
    _still_connected(neighbour)


def test_deleting_a_device_disconnects_it_within_a_second_and_refuses_its_certificate(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    device = clients(device_client(broker, registry["deleted"])).connect()
    bystander = clients(device_client(broker, registry["bystander"])).connect()
    platform.call("device_delete", tenant=LIVE, name="deleted")
    _kicked_within(device, 1.0)
    assert device.disconnect_reason.value == ADMINISTRATIVE_ACTION
    # Its certificates are revoked with it, and so refused in the TLS handshake.
    assert eventually(lambda: _refused_in_tls(broker, registry["deleted"]))
    _still_connected(bystander)


def test_the_broker_keeps_writing_its_state_after_a_connected_device_is_deleted(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    device = clients(device_client(broker, registry["deleted-too"])).connect()
    platform.call("device_delete", tenant=LIVE, name="deleted-too")
    _kicked_within(device, 1.0)  # its disconnect is recorded for a device that is gone
    bystander = clients(device_client(broker, registry["bystander"])).connect()
    bystander.publish("devices/bystander/after-delete", b"written", qos=1, retain=True)
    row = eventually(lambda: platform.call("retained", tenant=LIVE, topic="devices/bystander/after-delete"))
    assert (row["payload"], row["publisher_name"]) == ("written", "bystander")


def test_enabling_a_device_again_lets_it_back_in_without_a_restart(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle]) -> None:
    bundle = registry["disabled"]
    args = (broker.port, bundle.ca, bundle.cert, bundle.key, "disabled")
    platform.call("device_enable", tenant=LIVE, name="disabled", enabled=False)
    assert eventually(lambda: connack_code(*args) == 5)
    platform.call("device_enable", tenant=LIVE, name="disabled", enabled=True)
    assert eventually(lambda: connack_code(*args) == 0)


def test_enabling_a_tenant_again_lets_its_devices_back_in_without_a_restart(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle]) -> None:
    bundle = registry["doomed"]
    args = (broker.port, bundle.ca, bundle.cert, bundle.key, "doomed")
    platform.call("tenant_enable", slug=DOOMED, enabled=False)
    assert eventually(lambda: connack_code(*args) == 5)
    platform.call("tenant_enable", slug=DOOMED, enabled=True)
    assert eventually(lambda: connack_code(*args) == 0)


def test_a_device_whose_certificate_was_revoked_connects_with_its_new_certificate(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle]) -> None:
    old = registry["rotated"]
    assert connack_code(broker.port, old.ca, old.cert, old.key, "rotated") == 0
    platform.call("cert_revoke", serial=old.serial)
    assert eventually(lambda: _refused_in_tls(broker, old))
    new = platform.issue(LIVE, "rotated")
    assert eventually(lambda: connack_code(broker.port, new.ca, new.cert, new.key, "rotated") == 0)
    assert _refused_in_tls(broker, old)


# ACL rules -----------------------------------------------------------------------------------


def _delivered(client: Client, topic: str, payload: bytes) -> bool:
    """Publish to a topic the client subscribed to and report whether it came back."""
    client.publish(topic, payload, qos=1)
    return any(m.payload == payload for m in client.collect(0.3))


def test_a_deny_rule_drops_a_live_subscription_and_stops_its_deliveries(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    device = clients(device_client(broker, registry["acl-deny"])).connect()
    assert [g.value for g in device.subscribe("devices/acl-deny/cmd/#", qos=1)] == [1]
    assert _delivered(device, "devices/acl-deny/cmd/a", b"before")
    platform.call("rule_create", tenant=LIVE, device="acl-deny", subject_kind="device",
                  action="subscribe", topic_filter="devices/{device}/cmd/#", effect="deny")
    probes = iter(range(1000))
    eventually(lambda: not _delivered(device, "devices/acl-deny/cmd/a", f"probe-{next(probes)}".encode()),
               timeout=3)
    device.publish("devices/acl-deny/cmd/a", b"after", qos=1)
    device.expect_none(0.5)
    # Subscribing again is refused; the rest of the device's tree still works.
    assert [g.value for g in device.subscribe("devices/acl-deny/cmd/#", qos=1)] == [0x87]
    assert [g.value for g in device.subscribe("devices/acl-deny/state", qos=1)] == [1]
    assert _delivered(device, "devices/acl-deny/state", b"still here")


def test_a_new_allow_rule_takes_effect_without_a_restart(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    device = clients(device_client(broker, registry["acl-allow"])).connect()
    codes: dict[int, int] = {}
    device.client.on_publish = lambda _c, _u, mid, reason, _p: codes.__setitem__(mid, reason.value)

    def puback(topic: str) -> int:
        info = device.client.publish(topic, b"x", qos=1)
        info.wait_for_publish(5)
        return codes[info.mid]

    assert puback("fleet/acl-allow/x") == 0x87
    assert [g.value for g in device.subscribe("fleet/#", qos=1)] == [0x87]
    platform.call("rule_create", tenant=LIVE, subject_kind="all_devices", action="both",
                  topic_filter="fleet/#")
    eventually(lambda: puback("fleet/acl-allow/x") == 0x10)  # accepted; nobody subscribed
    assert [g.value for g in device.subscribe("fleet/#", qos=1)] == [1]
    assert _delivered(device, "fleet/acl-allow/y", b"shared")


def test_a_rules_maximum_qos_caps_the_granted_qos_of_a_subscription(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    platform.call("rule_create", tenant=LIVE, subject_kind="all_devices", action="subscribe",
                  topic_filter="telemetry/{device}/#", max_qos=1)
    device = clients(device_client(broker, registry["acl-qos"])).connect()
    assert eventually(lambda: [g.value for g in device.subscribe("telemetry/acl-qos/#", qos=2)] == [1])
    assert [g.value for g in device.subscribe("telemetry/acl-qos/low", qos=0)] == [0]


def test_a_new_device_with_a_new_certificate_connects_without_a_restart(
        broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    bundle = platform.device(LIVE, "newcomer")
    args = (broker.port, bundle.ca, bundle.cert, bundle.key, "newcomer")
    assert eventually(lambda: connack_code(*args) == 0)
    device = clients(device_client(broker, bundle)).connect()
    device.subscribe("devices/newcomer/#", qos=1)
    assert _delivered(device, "devices/newcomer/hello", b"hi")


def test_a_device_of_a_new_tenant_connects_without_a_restart(
        broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    # The new tenant brings a new issuing CA, which the broker's TLS must learn to trust.
    platform.call("tenant_create", slug="it-latecomer")
    bundle = platform.device("it-latecomer", "first")
    args = (broker.port, bundle.ca, bundle.cert, bundle.key, "first")

    def accepted() -> bool:
        try:
            return connack_code(*args) == 0
        except OSError:  # TLS refused while the new CA is not yet trusted
            return False

    assert eventually(accepted)
    device = clients(device_client(broker, bundle)).connect()
    device.subscribe("devices/first/#", qos=1)
    assert _delivered(device, "devices/first/hello", b"hi")


# Retained state ------------------------------------------------------------------------------


def test_clearing_a_retained_message_from_the_platform_removes_it_without_a_restart(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    device = clients(device_client(broker, registry["retainer"])).connect()
    device.publish("devices/retainer/kept", b"stays", qos=1, retain=True)
    device.publish("devices/retainer/dropped", b"goes", qos=1, retain=True)
    eventually(lambda: platform.call("retained", tenant=LIVE, topic="devices/retainer/dropped"))
    platform.call("retained_clear", tenant=LIVE, topic="devices/retainer/dropped")
    eventually(lambda: platform.call("retained", tenant=LIVE, topic="devices/retainer/dropped") is None)
    device.subscribe("devices/retainer/#", qos=1)
    assert [(m.topic, m.payload) for m in device.collect(0.5)] == [("devices/retainer/kept", b"stays")]


def test_deleting_a_tenant_ends_everything_of_it_and_its_slug_starts_empty_again(
        broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    slug = "it-reborn"
    platform.call("tenant_create", slug=slug)
    old = platform.device(slug, "phoenix")
    assert eventually(lambda: connack_code(broker.port, old.ca, old.cert, old.key, "phoenix") == 0)
    device = clients(device_client(broker, old)).connect()
    device.publish("devices/phoenix/state", b"old life", qos=1, retain=True)
    platform.call("tenant_delete", slug=slug)
    _kicked_within(device, 1.0)
    # Its certificates are gone with it: refused at CONNECT (0x86), or in the handshake once
    # the TLS context is rebuilt without its CA's CRL.
    try:
        code: object = connack_code(broker.port, old.ca, old.cert, old.key, "phoenix", level=5)
    except ssl.SSLError:
        code = "handshake refused"
    assert code in (0x86, "handshake refused")
    platform.call("tenant_create", slug=slug)
    new = platform.device(slug, "phoenix")
    assert eventually(lambda: connack_code(broker.port, new.ca, new.cert, new.key, "phoenix") == 0)
    again = clients(device_client(broker, new)).connect()
    assert [g.value for g in again.subscribe("devices/phoenix/#", qos=1)] == [1]
    again.expect_none(0.5)  # the deleted tenant's retained message did not survive it
