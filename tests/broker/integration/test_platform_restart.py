"""What a broker restart keeps and what it learns: retained state and persistent sessions
survive a graceful stop, and registry changes made while it was down apply at start.

One restart serves the module: `restarted` prepares state, stops the broker with SIGTERM,
changes the registry while it is down, starts it again, and each test checks one outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes

from broker.integration.signed_principals import BridgePrincipal, sign_principal
from tests.broker.conftest import Client, props
from tests.broker.integration.platform_harness import (
    REVOKED_IN_HANDSHAKE,
    Bundle,
    Platform,
    PlatformBroker,
    bridge_client,
    device_client,
    eventually,
    refusal,
)

TENANT = "it-restart"
PAUSED = "it-restart-paused"


@dataclass
class Restart:
    bundles: dict[str, Bundle]
    device_ids: dict[str, int]
    rows_before: dict[str, Any] = field(default_factory=dict)
    stop_status: int | None = None


def _operator(broker: PlatformBroker) -> Client:
    token = sign_principal(BridgePrincipal(TENANT, 1, "operator", "operator"))
    return bridge_client(broker, "portal-operator", token).connect()


def _session_client(broker: PlatformBroker, bundle: Bundle, clean: bool = False) -> Client:
    client = device_client(broker, bundle)
    expiry = props(PacketTypes.CONNECT, SessionExpiryInterval=0 if clean else 600)
    return client.connect(clean=clean, properties=expiry)


@pytest.fixture(scope="module")
def restarted(platform: Platform, broker: PlatformBroker) -> Iterator[Restart]:
    platform.call("tenant_create", slug=TENANT)
    platform.call("tenant_create", slug=PAUSED)
    names = ["keeper", "sleeper", "forgetful", "muted", "steady", "revoked-down", "disabled-down"]
    bundles = {name: platform.device(TENANT, name) for name in names}
    ids = {name: platform.call("device_state", tenant=TENANT, name=name)["id"] for name in names}
    bundles["paused"] = platform.device(PAUSED, "paused")
    state = Restart(bundles, ids)
    made: list[Client] = []
    try:
        # Retained: one kept, one cleared before the stop.
        keeper = eventually(lambda: _try(lambda: device_client(broker, bundles["keeper"]).connect()))
        made.append(keeper)
        keeper.publish("devices/keeper/state", b"on", qos=1, retain=True)
        keeper.publish("devices/keeper/gone", b"soon cleared", qos=1, retain=True)
        keeper.publish("devices/keeper/gone", b"", qos=1, retain=True)
        keeper.publish("devices/keeper/obsolete", b"cleared while down", qos=1, retain=True)
        keeper.disconnect()
        state.rows_before = eventually(
            lambda: platform.call("retained", tenant=TENANT, topic="devices/keeper/state"))
        eventually(lambda: platform.call("retained", tenant=TENANT, topic="devices/keeper/obsolete"))
        # A tenant with retained state, disabled across the restart and enabled after it.
        paused = eventually(lambda: _try(lambda: device_client(broker, bundles["paused"]).connect()))
        made.append(paused)
        paused.publish("devices/paused/state", b"kept while paused", qos=1, retain=True)
        paused.disconnect()
        eventually(lambda: platform.call("retained", tenant=PAUSED, topic="devices/paused/state"))
        platform.call("tenant_enable", slug=PAUSED, enabled=False)
        # Sessions: one persistent and one clean, both subscribed, both away.
        for name, clean in (("sleeper", False), ("forgetful", True), ("muted", False)):
            client = _session_client(broker, bundles[name], clean=clean)
            made.append(client)
            assert [g.value for g in client.subscribe(f"devices/{name}/inbox", qos=1)] == [1]
            client.disconnect()
        operator = _operator(broker)
        made.append(operator)
        for name in ("sleeper", "forgetful"):
            operator.publish(f"devices/{name}/inbox", b"while away, before the restart", qos=1)
        operator.disconnect()
        # The graceful stop, then registry changes the broker cannot see live.
        state.stop_status = broker.stop()
        platform.call("cert_revoke", serial=bundles["revoked-down"].serial)
        platform.call("device_enable", tenant=TENANT, name="disabled-down", enabled=False)
        platform.call("retained_clear", tenant=TENANT, topic="devices/keeper/obsolete")
        platform.call("rule_create", tenant=TENANT, device="muted", subject_kind="device",
                      action="subscribe", topic_filter="devices/{device}/inbox", effect="deny")
        broker.start()
        platform.call("tenant_enable", slug=PAUSED, enabled=True)
        operator = _operator(broker)
        made.append(operator)
        for name in ("sleeper", "forgetful", "muted"):
            operator.publish(f"devices/{name}/inbox", b"while away, after the restart", qos=1)
        operator.disconnect()
        yield state
    finally:
        for client in made:
            _try(client.client.loop_stop)


def _try(call: Any) -> Any:
    try:
        return call()
    except AssertionError:
        return None


def _refusal(broker: PlatformBroker, bundle: Bundle, clients: Any) -> int:
    client = clients(device_client(broker, bundle))
    client.connect(wait=False)
    assert client.connected.wait(5), "no CONNACK"
    return int(client.connack[1].value)


# Retained state ------------------------------------------------------------------------------


def test_a_graceful_stop_exits_cleanly(restarted: Restart) -> None:
    assert restarted.stop_status == 0


def test_a_retained_message_is_recorded_with_its_publisher_device(
        restarted: Restart, platform: Platform) -> None:
    assert restarted.rows_before["payload"] == "on"
    row = platform.call("retained", tenant=TENANT, topic="devices/keeper/state")
    assert row == {"payload": "on", "qos": 1, "publisher_id": restarted.device_ids["keeper"],
                   "publisher_name": "keeper"}


def test_a_retained_message_survives_a_restart(
        restarted: Restart, broker: PlatformBroker, clients: Any) -> None:
    keeper = clients(device_client(broker, restarted.bundles["keeper"])).connect()
    keeper.subscribe("devices/keeper/state", qos=1)
    [message] = keeper.expect(1)
    assert (message.topic, message.payload, message.retain) == ("devices/keeper/state", b"on", True)
    keeper.expect_none(0.3)


def test_a_retained_message_cleared_before_a_restart_stays_cleared(
        restarted: Restart, broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    assert platform.call("retained", tenant=TENANT, topic="devices/keeper/gone") is None
    keeper = clients(device_client(broker, restarted.bundles["keeper"])).connect()
    keeper.subscribe("devices/keeper/gone", qos=1)
    keeper.expect_none(0.5)


def test_a_retained_message_cleared_from_the_platform_while_the_broker_was_down_is_gone_after_the_start(
        restarted: Restart, broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    keeper = clients(device_client(broker, restarted.bundles["keeper"])).connect()
    keeper.subscribe("devices/keeper/obsolete", qos=1)
    keeper.expect_none(0.5)
    eventually(lambda: platform.call("retained", tenant=TENANT, topic="devices/keeper/obsolete") is None)


def test_the_retained_state_of_a_tenant_disabled_across_a_restart_is_back_when_it_is_enabled(
        restarted: Restart, broker: PlatformBroker, clients: Any) -> None:
    bundle = restarted.bundles["paused"]
    paused = eventually(lambda: _try(lambda: clients(device_client(broker, bundle)).connect()))
    paused.subscribe("devices/paused/state", qos=1)
    assert [m.payload for m in paused.expect(1)] == [b"kept while paused"]


# Sessions ------------------------------------------------------------------------------------


def test_a_persistent_session_survives_a_restart_with_the_messages_queued_while_away(
        restarted: Restart, broker: PlatformBroker, clients: Any) -> None:
    sleeper = clients(_session_client(broker, restarted.bundles["sleeper"]))
    assert sleeper.session_present
    got = sorted((m.topic, m.payload) for m in sleeper.expect(2))
    assert got == [("devices/sleeper/inbox", b"while away, after the restart"),
                   ("devices/sleeper/inbox", b"while away, before the restart")]


def test_a_clean_session_keeps_nothing_across_a_restart(
        restarted: Restart, broker: PlatformBroker, clients: Any) -> None:
    forgetful = clients(_session_client(broker, restarted.bundles["forgetful"], clean=True))
    assert not forgetful.session_present
    forgetful.expect_none(0.5)


def test_a_persistent_subscription_denied_by_a_rule_added_while_the_broker_was_down_is_dropped(
        restarted: Restart, broker: PlatformBroker, clients: Any) -> None:
    muted = clients(_session_client(broker, restarted.bundles["muted"]))
    assert muted.session_present
    muted.expect_none(0.5)


# Changes made while the broker was down -----------------------------------------------------


def test_a_device_unchanged_while_the_broker_was_down_connects_right_after_the_start(
        restarted: Restart, broker: PlatformBroker, clients: Any) -> None:
    clients(device_client(broker, restarted.bundles["steady"])).connect()


def test_a_certificate_revoked_while_the_broker_was_down_is_refused_right_after_the_start(
        restarted: Restart, broker: PlatformBroker, clients: Any) -> None:
    bundle = restarted.bundles["revoked-down"]
    # The CRLs are loaded before the first client is accepted.
    assert refusal(broker.port, bundle.ca, bundle.cert, bundle.key, bundle.name, level=5) == REVOKED_IN_HANDSHAKE


def test_a_device_disabled_while_the_broker_was_down_is_refused_right_after_the_start(
        restarted: Restart, broker: PlatformBroker, clients: Any) -> None:
    assert _refusal(broker, restarted.bundles["disabled-down"], clients) == 0x87
