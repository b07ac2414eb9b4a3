"""Acknowledged means durable on the platform broker: `kill -9` of `runbroker` right after
the last PUBACK/PUBCOMP loses nothing it acknowledged (the journal in ROOST_DATA_DIR/broker/)."""

from __future__ import annotations

import time

import pytest
from paho.mqtt.packettypes import PacketTypes

from broker.integration.signed_principals import BridgePrincipal, sign_principal
from tests.broker.conftest import Client, props
from tests.broker.integration.platform_harness import (
    Platform,
    PlatformBroker,
    bridge_client,
    device_client,
    eventually,
)

TENANT = "it-crash"
COUNT = 1000


def _session(broker: PlatformBroker, bundle, clients) -> Client:
    client = clients(device_client(broker, bundle))
    return client.connect(clean=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=3600))


def _publish_all(broker: PlatformBroker, topic: str, qos: int, clients) -> None:
    token = sign_principal(BridgePrincipal(TENANT, 1, "operator", "operator"))
    operator = clients(bridge_client(broker, "crash-operator", token).connect())
    codes: dict[int, int] = {}
    operator.client.on_publish = lambda _c, _u, mid, reason, _p: codes.__setitem__(mid, reason.value)
    for start in range(0, COUNT, 250):  # paho slows down with very long queues of its own
        infos = [operator.client.publish(topic, b"%d" % i, qos) for i in range(start, start + 250)]
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()
        # Acknowledged with success, each: 0x10 (no subscriber) or a refusal is not delivery.
        refused = {i: codes.get(info.mid) for i, info in enumerate(infos, start) if codes.get(info.mid)}
        assert not refused, f"messages acknowledged with a reason code: {refused}"
    operator.client.loop_stop()


@pytest.fixture(scope="module")
def tenant(platform: Platform) -> str:
    platform.call("tenant_create", slug=TENANT)
    return TENANT


@pytest.mark.parametrize("qos", [1, 2])
def test_every_message_acknowledged_before_a_kill_reaches_the_offline_persistent_device(
    platform: Platform, broker: PlatformBroker, tenant: str, clients, qos: int
) -> None:
    name = f"sleeper-{qos}"
    bundle = platform.device(tenant, name)
    sub = eventually(lambda: _try(lambda: _session(broker, bundle, clients)))
    assert [g.value for g in sub.subscribe(f"devices/{name}/inbox", qos=qos)] == [qos]
    sub.disconnect()
    _publish_all(broker, f"devices/{name}/inbox", qos, clients)
    broker.kill()  # SIGKILL right after the last acknowledgement
    broker.start()
    again = _session(broker, bundle, clients)
    assert again.session_present
    got = [m.payload for m in again.expect(COUNT, timeout=30)]
    time.sleep(0.5)
    got += [m.payload for m in again.collect(0.5)]
    expected = [b"%d" % i for i in range(COUNT)]
    if qos == 2:
        assert got == expected  # exactly once, in order
    else:
        assert sorted(set(got)) == sorted(expected)


def test_a_subscription_acknowledged_before_a_kill_is_there_after_the_restart(
    platform: Platform, broker: PlatformBroker, tenant: str, clients
) -> None:
    bundle = platform.device(tenant, "subscriber")
    sub = eventually(lambda: _try(lambda: _session(broker, bundle, clients)))
    assert [g.value for g in sub.subscribe("devices/subscriber/inbox", qos=1)] == [1]
    broker.kill()
    sub.client.loop_stop()
    broker.start()
    token = sign_principal(BridgePrincipal(TENANT, 1, "operator", "operator"))
    operator = clients(bridge_client(broker, "crash-operator-2", token).connect())
    operator.publish("devices/subscriber/inbox", b"after", qos=1)
    again = _session(broker, bundle, clients)
    assert again.session_present
    assert again.expect(1)[0].payload == b"after"


def _try(call):
    try:
        return call()
    except AssertionError:
        return None


def test_retained_messages_keep_their_publisher_across_a_kill(
    platform: Platform, broker: PlatformBroker, tenant: str, clients
) -> None:
    """After the restart a retained message still lasts only as long as its publisher's right:
    a signed-in operator's stays deliverable, a since-disabled device's is withheld."""
    platform.call("rule_create", tenant=tenant, subject_kind="all_devices", action="both",
                  topic_filter="crash-fleet/#")
    reporter = platform.device(tenant, "reporter")
    device = eventually(lambda: _try(lambda: clients(device_client(broker, reporter)).connect()))
    codes: dict[int, int] = {}
    device.client.on_publish = lambda _c, _u, mid, reason, _p: codes.__setitem__(mid, reason.value)

    def published() -> bool:  # once the broker has the new rule
        sent = device.client.publish("crash-fleet/reporter/state", b"up", qos=1, retain=True)
        sent.wait_for_publish(5)
        return codes.get(sent.mid) in (0, 0x10)

    assert eventually(published)
    token = sign_principal(BridgePrincipal(TENANT, 1, "operator", "operator"))
    operator = clients(bridge_client(broker, "crash-retainer", token).connect())
    operator.publish("devices/reporter/inbox", b"cmd", qos=1, retain=True)
    broker.kill()
    device.client.loop_stop()
    operator.client.loop_stop()
    broker.start()
    platform.call("device_enable", tenant=tenant, name="reporter", enabled=False)

    def topics_a_new_subscriber_gets() -> list[str]:
        reader = clients(bridge_client(broker, "crash-reader", token).connect())
        for topic_filter in ("crash-fleet/#", "devices/reporter/inbox"):
            reader.subscribe(topic_filter, qos=1)
        got = sorted(m.topic for m in reader.collect(0.5))
        reader.client.disconnect()
        return got

    assert eventually(lambda: topics_a_new_subscriber_gets() == ["devices/reporter/inbox"], timeout=10)
