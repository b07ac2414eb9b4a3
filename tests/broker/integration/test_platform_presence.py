"""Presence: the registry learns who is online, and portal users on the bridge listener see
retained `$roost/presence/{device}` and `$roost/events/...` with a signed, short-lived token."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.core import signing

from broker.integration.signed_principals import BridgePrincipal, sign_principal
from tests.broker.conftest import Client
from tests.broker.integration.platform_harness import (
    Bundle,
    Platform,
    PlatformBroker,
    bridge_client,
    device_client,
    eventually,
)

TENANT = "it-presence"
ELSEWHERE = "it-presence-other"
SUSPENDED = "it-presence-suspended"


@pytest.fixture(scope="module", autouse=True)
def registry(platform: Platform) -> dict[str, Bundle]:
    platform.call("tenant_create", slug=TENANT)
    platform.call("tenant_create", slug=ELSEWHERE)
    platform.call("tenant_create", slug=SUSPENDED)
    platform.call("tenant_enable", slug=SUSPENDED, enabled=False)
    return {name: platform.device(TENANT, name) for name in ("beacon", "old-timer", "lamp", "survivor")}


def _token(tenant: str = TENANT, role: str = "viewer") -> str:
    return sign_principal(BridgePrincipal(tenant, 7, "bob", role))


def _state(platform: Platform, name: str) -> dict[str, Any]:
    return platform.call("device_state", tenant=TENANT, name=name)  # type: ignore[no-any-return]


# The registry --------------------------------------------------------------------------------


def test_connecting_marks_the_device_online_with_its_address_and_protocol_version(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    assert not _state(platform, "beacon")["online"]
    beacon = clients(device_client(broker, registry["beacon"])).connect()
    state = eventually(lambda: (s := _state(platform, "beacon"))["online"] and s)
    assert (state["last_ip"], state["protocol_version"]) == ("127.0.0.1", 5)
    beacon.disconnect()
    eventually(lambda: not _state(platform, "beacon")["online"])


def test_a_311_connection_records_protocol_version_4(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    clients(device_client(broker, registry["old-timer"], version=4)).connect()
    state = eventually(lambda: (s := _state(platform, "old-timer"))["online"] and s)
    assert state["protocol_version"] == 4


# The bridge listener -------------------------------------------------------------------------


def test_a_viewer_on_the_bridge_sees_presence_go_online_then_offline_with_a_disconnected_event(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    lamp = clients(device_client(broker, registry["lamp"])).connect()
    viewer = clients(bridge_client(broker, "portal-bob", _token())).connect()
    assert [g.value for g in viewer.subscribe("$roost/presence/lamp", qos=1)] == [1]
    [online] = viewer.expect(1)
    assert online.retain and json.loads(online.payload)["online"] is True
    assert [g.value for g in viewer.subscribe("$roost/events/disconnected/lamp", qos=1)] == [1]
    lamp.disconnect()
    got = {m.topic: json.loads(m.payload) for m in viewer.expect(2)}
    assert got["$roost/presence/lamp"]["online"] is False
    assert got["$roost/events/disconnected/lamp"]["device"] == "lamp"


def test_a_viewer_of_another_tenant_sees_none_of_its_presence(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    clients(device_client(broker, registry["lamp"])).connect()
    stranger = clients(bridge_client(broker, "portal-charlie", _token(tenant=ELSEWHERE))).connect()
    stranger.subscribe("$roost/presence/#", qos=1)
    stranger.subscribe("$roost/events/#", qos=1)
    stranger.expect_none(0.5)


def test_a_viewer_on_the_bridge_may_read_but_not_publish(
        broker: PlatformBroker, clients: Any) -> None:
    codes: dict[str, int] = {}
    for role in ("viewer", "operator"):
        portal = clients(bridge_client(broker, f"portal-{role}", _token(role=role))).connect()
        portal.client.on_publish = lambda _c, _u, _mid, reason, _p, role=role: codes.__setitem__(role, reason.value)
        portal.client.publish("devices/lamp/cmd", b"on", qos=1).wait_for_publish(5)
    assert codes == {"viewer": 0x87, "operator": 0x10}  # accepted; 0x10: nobody subscribed


def test_a_bridge_token_for_a_disabled_tenant_is_refused(broker: PlatformBroker, clients: Any) -> None:
    refused = clients(bridge_client(broker, "portal-suspended", _token(tenant=SUSPENDED)))
    refused.connect(wait=False)
    assert refused.connected.wait(5)
    assert refused.connack[1].value == 0x87


def test_a_bridge_connection_with_a_tampered_token_is_refused(
        broker: PlatformBroker, clients: Any) -> None:
    good = clients(bridge_client(broker, "portal-ok", _token())).connect()
    assert not good.connack[1].is_failure
    token = _token()
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    refused = clients(bridge_client(broker, "portal-bad", tampered))
    refused.connect(wait=False)
    assert refused.connected.wait(5)
    assert refused.connack[1].value == 0x86


def test_a_bridge_connection_with_an_expired_token_is_refused(
        broker: PlatformBroker, clients: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched:
        # Signed ten minutes ago; tokens live five.
        patched.setattr(signing.TimestampSigner, "timestamp",
                        lambda self: signing.b62_encode(int(time.time()) - 600))
        stale = _token()
    refused = clients(bridge_client(broker, "portal-late", stale))
    refused.connect(wait=False)
    assert refused.connected.wait(5)
    assert refused.connack[1].value == 0x86


def test_a_bridge_connection_without_a_token_is_refused(broker: PlatformBroker, clients: Any) -> None:
    refused = clients(bridge_client(broker, "portal-none", ""))
    refused.client.username_pw_set(None, None)
    refused.connect(wait=False)
    assert refused.connected.wait(5)
    assert refused.connack[1].value == 0x86


def test_the_optional_plain_listener_takes_signed_principals_and_nothing_else(
        platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    plain = PlatformBroker(platform, plain=True).start()
    try:
        viewer = clients(Client(plain.plain_port, "plain-viewer"))
        viewer.client.username_pw_set("portal", _token())
        viewer.connect()
        assert [g.value for g in viewer.subscribe("devices/lamp/#", qos=1)] == [1]
        operator = clients(Client(plain.plain_port, "plain-operator"))
        operator.client.username_pw_set("portal", _token(role="operator"))
        operator.connect()
        operator.publish("devices/lamp/set", b"off", qos=1)
        assert [m.payload for m in viewer.expect(1)] == [b"off"]
        # No certificate can come over plain TCP, so a device's own login does not exist here.
        device = clients(Client(plain.plain_port, "lamp"))
        device.client.username_pw_set("lamp", None)
        device.connect(wait=False)
        assert device.connected.wait(5)
        assert device.connack[1].value == 0x86
    finally:
        plain.kill()


def test_a_viewer_subscribed_to_everything_gets_no_roost_topics(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    viewer = clients(bridge_client(broker, "portal-hash", _token())).connect()
    viewer.subscribe("#", qos=1)
    lamp = clients(device_client(broker, registry["lamp"])).connect()
    lamp.publish("devices/lamp/state", b"on", qos=1)
    topics = {m.topic for m in viewer.collect(1.0)}
    assert "devices/lamp/state" in topics
    assert not [t for t in topics if t.startswith("$")], topics


# After a crash ---------------------------------------------------------------------------------


def test_after_a_crash_devices_that_were_online_are_announced_offline_at_the_next_start(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    survivor = clients(device_client(broker, registry["survivor"]))
    survivor.client.reconnect_delay_set(min_delay=120, max_delay=120)
    survivor.connect()
    eventually(lambda: _state(platform, "survivor")["online"])
    eventually(lambda: (row := platform.call("retained", tenant=TENANT, topic="$roost/presence/survivor"))
               and json.loads(row["payload"])["online"])
    before = _state(platform, "survivor")
    assert before["last_ip"] == "127.0.0.1" and before["protocol_version"] == 5
    broker.kill()  # no goodbye for anyone
    survivor.client.loop_stop()
    broker.start()
    after = eventually(lambda: (state := _state(platform, "survivor")) and not state["online"] and state)
    # Where and when it was last seen, and how, stay as they were before the crash.
    assert {k: after[k] for k in ("last_ip", "protocol_version", "last_seen")} == \
        {k: before[k] for k in ("last_ip", "protocol_version", "last_seen")}
    viewer = clients(bridge_client(broker, "portal-after-crash", _token())).connect()
    viewer.subscribe("$roost/presence/survivor", qos=1)
    [presence] = viewer.expect(1)
    assert json.loads(presence.payload)["online"] is False


def test_a_device_that_reconnects_over_its_old_connection_stays_online(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    first = clients(device_client(broker, registry["beacon"]))
    first.client.reconnect_delay_set(min_delay=120, max_delay=120)
    first.connect()
    eventually(lambda: _state(platform, "beacon")["online"])
    second = clients(device_client(broker, registry["beacon"])).connect()
    assert first.disconnected.wait(5)
    assert first.disconnect_reason.value == 0x8E  # session taken over
    viewer = clients(bridge_client(broker, "portal-takeover", _token())).connect()
    time.sleep(0.5)  # two flushes of the write-behind
    assert _state(platform, "beacon")["online"]
    viewer.subscribe("$roost/presence/beacon", qos=1)
    [presence] = viewer.expect(1)
    assert json.loads(presence.payload)["online"] is True
    assert not second.disconnected.is_set()
