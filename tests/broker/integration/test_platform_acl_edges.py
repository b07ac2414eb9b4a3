"""ACL edges on the platform broker: wills at CONNECT, `$SYS` and `$roost/` closed to
clients, and retained messages that last only as long as their publisher's right."""

from __future__ import annotations

from typing import Any

import pytest

from tests.broker.integration.platform_harness import (
    Bundle,
    Platform,
    PlatformBroker,
    device_client,
    eventually,
    tls_socket,
)

TENANT = "it-edges"


@pytest.fixture(scope="module", autouse=True)
def registry(platform: Platform) -> dict[str, Bundle]:
    platform.call("tenant_create", slug=TENANT)
    return {name: platform.device(TENANT, name) for name in ("alpha", "beta", "gamma", "delta")}


def _connack_with_will(broker: PlatformBroker, bundle: Bundle, level: int, will_topic: str) -> int | None:
    """The CONNACK code exactly as it came off the wire (3.1.1 return code or 5.0 reason)."""
    from broker.mqtt import Connack, Connect, StreamDecoder, Will, encode

    with tls_socket(broker.port, bundle.ca, bundle.cert, bundle.key) as sock:
        sock.sendall(encode(Connect(protocol_level=level, client_id=bundle.name,
                                    will=Will(will_topic, b"gone", 1)), level))
        decoder = StreamDecoder(server_side=False, protocol_level=level)
        while data := sock.recv(65536):
            for packet in decoder.feed(data):
                if isinstance(packet, Connack):
                    return int(packet.reason_code)
    return None


@pytest.mark.parametrize(("level", "code"), [(5, 0x87), (4, 5)], ids=["mqtt5", "mqtt311"])
def test_a_will_on_another_devices_topic_refuses_the_connect(
        broker: PlatformBroker, registry: dict[str, Bundle], level: int, code: int) -> None:
    assert _connack_with_will(broker, registry["alpha"], level, "devices/beta/status") == code


@pytest.mark.parametrize("level", [5, 4], ids=["mqtt5", "mqtt311"])
def test_a_will_on_its_own_topic_is_accepted(
        broker: PlatformBroker, registry: dict[str, Bundle], level: int) -> None:
    assert _connack_with_will(broker, registry["alpha"], level, "devices/alpha/status") == 0


@pytest.mark.parametrize("topic", ["$SYS/broker/uptime", "$roost/shadow/alpha/update", "$roost/anything"])
def test_a_device_may_not_publish_into_the_brokers_or_the_platforms_topics(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any,
        topic: str) -> None:
    # Even with a rule that allows everything: these namespaces are not the tenant's to grant.
    platform.call("rule_create", tenant=TENANT, device="delta", subject_kind="device", action="both",
                  topic_filter="#")
    device = clients(device_client(broker, registry["delta"])).connect()
    codes: dict[int, int] = {}
    device.client.on_publish = lambda _c, _u, mid, reason, _p: codes.__setitem__(mid, reason.value)
    sent = device.client.publish(topic, b"forged", qos=1)
    sent.wait_for_publish(5)
    own = device.client.publish("devices/delta/ok", b"fine", qos=1)
    own.wait_for_publish(5)
    assert codes == {sent.mid: 0x87, own.mid: 0x10}  # accepted; 0x10: nobody subscribed


def test_a_retained_message_stops_reaching_new_subscribers_when_its_publisher_loses_the_right(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    rule = platform.call("rule_create", tenant=TENANT, subject_kind="all_devices", action="both",
                         topic_filter="fleet/#")
    publisher = clients(device_client(broker, registry["beta"])).connect()
    codes: dict[int, int] = {}
    publisher.client.on_publish = lambda _c, _u, mid, reason, _p: codes.__setitem__(mid, reason.value)

    def published() -> bool:  # once the broker has the new rule
        sent = publisher.client.publish("fleet/beta/state", b"on", qos=1, retain=True)
        sent.wait_for_publish(5)
        return codes.get(sent.mid) == 0x10  # accepted (retained); nobody subscribed yet

    assert eventually(published)
    first = clients(device_client(broker, registry["gamma"])).connect()
    first.subscribe("fleet/#", qos=1)
    [message] = first.expect(1)
    assert (message.topic, message.payload, message.retain) == ("fleet/beta/state", b"on", True)
    first.client.disconnect()
    # Everyone may still read fleet/#; only beta may no longer publish there.
    platform.call("rule_update", rule_id=rule, action="subscribe")

    def withheld() -> bool:
        late = clients(device_client(broker, registry["gamma"])).connect()
        late.subscribe("fleet/#", qos=1)
        try:
            late.expect_none(0.3)
            return True
        except AssertionError:
            return False
        finally:
            late.client.disconnect()

    assert eventually(withheld, timeout=10)
    assert platform.call("retained", tenant=TENANT, topic="fleet/beta/state") is not None  # kept, not delivered
