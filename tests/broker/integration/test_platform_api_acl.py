"""The ACL and retained-state API against the running platform: a rule added through the API drops
a live subscription (the device stops receiving); `acl/impact` asks the broker for the live
subscriptions a draft would drop; `acl/explain` answers as the broker decides; `DELETE
retained/?filter=…` clears a retained subtree through the broker."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest

from broker.integration.inspect_client import live_sessions
from broker.integration.signed_principals import BridgePrincipal, sign_principal
from tests.broker.integration.platform_harness import (
    Bundle,
    Platform,
    PlatformBroker,
    PlatformWeb,
    bridge_client,
    device_client,
    eventually,
)

TENANT = "it-api-acl"
API = f"/api/v1/tenants/{TENANT}"
NOT_AUTHORIZED = 0x87


@pytest.fixture(scope="module", autouse=True)
def registry(platform: Platform) -> dict[str, Bundle]:
    platform.call("tenant_create", slug=TENANT)
    return {name: platform.device(TENANT, name) for name in ("listener", "watcher", "judge", "retainer", "keeper")}


@pytest.fixture(scope="module")
def admin_key(platform: Platform) -> str:
    return str(platform.call("api_key_create", tenant=TENANT, role="admin", name="it-acl-admin"))


@pytest.fixture(scope="module")
def operator_key(platform: Platform) -> str:
    return str(platform.call("api_key_create", tenant=TENANT, role="operator", name="it-acl-operator"))


def _filters(broker: PlatformBroker, client_id: str) -> list[str]:
    """The subscriptions the broker holds for a client now."""
    sessions = {s.client_id: s for s in live_sessions(TENANT, port=broker.metrics_port)}
    session = sessions.get(client_id)
    return [] if session is None else [sub.topic_filter for sub in session.subscriptions]


def test_a_rule_added_through_the_api_drops_a_live_subscription_and_the_device_stops_receiving(
        web: PlatformWeb, broker: PlatformBroker, registry: dict[str, Bundle], admin_key: str,
        clients: Any) -> None:
    device = clients(device_client(broker, registry["listener"])).connect()
    assert [g.value for g in device.subscribe("devices/listener/cmd/#", qos=1)] == [1]
    assert [g.value for g in device.subscribe("devices/listener/status", qos=1)] == [1]
    device.publish("devices/listener/cmd/reboot", b"before", qos=1)
    assert [m.payload for m in device.expect(1)] == [b"before"]

    status, rule, _ = web.request("POST", f"{API}/acl-rules/", admin_key, {
        "subject_kind": "device", "subject_device": "listener", "action": "subscribe", "effect": "deny",
        "topic_filter": "devices/{device}/cmd/#"})
    answered = time.monotonic()
    assert status == 201, rule
    eventually(lambda: "devices/listener/cmd/#" not in _filters(broker, "listener"), timeout=2)
    print(f"subscription dropped within {time.monotonic() - answered:.3f}s of the API's answer")
    assert _filters(broker, "listener") == ["devices/listener/status"]
    # Published in this order on one connection: once `status` arrives, `cmd` had its chance.
    device.publish("devices/listener/cmd/reboot", b"after", qos=1)
    device.publish("devices/listener/status", b"still here", qos=1)
    assert [(m.topic, m.payload) for m in device.expect(1)] == [("devices/listener/status", b"still here")]
    device.expect_none(0.3)


def test_impact_of_a_draft_deny_rule_lists_the_live_subscription_the_broker_holds(
        web: PlatformWeb, broker: PlatformBroker, registry: dict[str, Bundle], admin_key: str,
        clients: Any) -> None:
    draft = {"subject_kind": "device", "subject_device": "watcher", "action": "subscribe", "effect": "deny",
             "topic_filter": "devices/{device}/alerts/#"}
    device = clients(device_client(broker, registry["watcher"])).connect()
    status, before, _ = web.request("POST", f"{API}/acl/impact", admin_key, draft)
    assert status == 200, before
    assert (before["live"], before["subscriptions"]) == ("broker", [])
    # A clean session: the broker never stores it, so this subscription exists in its memory alone.
    device.subscribe("devices/watcher/alerts/#", qos=1)
    status, after, _ = web.request("POST", f"{API}/acl/impact", admin_key, draft)
    assert status == 200, after
    assert after["live"] == "broker" and after["live_error"] is None
    assert after["live_sessions"] >= 1 and after["live_subscriptions"] >= 1
    assert [{k: s[k] for k in ("principal", "topic_filter", "effect", "clients")}
            for s in after["subscriptions"]] == [
        {"principal": "device watcher", "topic_filter": "devices/watcher/alerts/#", "effect": "dropped",
         "clients": ["watcher"]}]
    # A preview changes nothing: the subscription still delivers.
    device.publish("devices/watcher/alerts/fire", b"drill", qos=1)
    assert [m.payload for m in device.expect(1)] == [b"drill"]


def test_explain_answers_as_the_broker_decides_a_subscription(
        web: PlatformWeb, broker: PlatformBroker, registry: dict[str, Bundle], admin_key: str,
        clients: Any) -> None:
    status, deny, _ = web.request("POST", f"{API}/acl-rules/", admin_key, {
        "subject_kind": "device", "subject_device": "judge", "action": "subscribe", "effect": "deny",
        "topic_filter": "devices/{device}/secret/#"})
    assert status == 201, deny

    def explain(topic: str) -> dict[str, Any]:
        code, body, _ = web.request("POST", f"{API}/acl/explain", admin_key, {
            "subject": {"device": "judge"}, "action": "subscribe", "topic": topic, "qos": 1})
        assert code == 200, body
        return dict(body)

    refused, granted = explain("devices/judge/secret/x"), explain("devices/judge/open")
    assert (refused["outcome"], refused["deciding_rules"]) == ("refused", [deny["id"]])
    assert (granted["outcome"], granted["granted_qos"]) == ("granted", 1)
    device = clients(device_client(broker, registry["judge"])).connect()
    # The rule reaches the broker through the change feed within moments.
    eventually(lambda: [g.value for g in device.subscribe("devices/judge/secret/x", qos=1)] == [NOT_AUTHORIZED])
    assert [g.value for g in device.subscribe("devices/judge/open", qos=1)] == [1]


def test_clearing_a_retained_subtree_through_the_api_clears_the_broker_and_the_database(
        web: PlatformWeb, broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle],
        operator_key: str, clients: Any) -> None:
    retainer = clients(device_client(broker, registry["retainer"])).connect()
    subtree = ["devices/retainer/state", "devices/retainer/fw/version", "devices/retainer/fw/channel"]
    for topic in subtree:
        retainer.publish(topic, f"value of {topic}".encode(), qos=1, retain=True)
    keeper = clients(device_client(broker, registry["keeper"])).connect()
    keeper.publish("devices/keeper/state", b"kept", qos=1, retain=True)
    listing = f"{API}/retained/?filter={quote('devices/retainer/#')}"

    def listed() -> list[str]:
        code, body, _ = web.request("GET", listing, operator_key)
        assert code == 200, body
        return [row["topic"] for row in body["results"]]

    # Written behind within moments.
    assert eventually(lambda: sorted(listed()) == sorted(subtree) and listed()) == sorted(subtree)
    status, body, _ = web.request("DELETE", listing, operator_key)
    assert (status, body) == (202, {"cleared": 3})
    eventually(lambda: listed() == [], timeout=5)
    assert all(platform.call("retained", tenant=TENANT, topic=topic) is None for topic in subtree)
    assert platform.call("retained", tenant=TENANT, topic="devices/keeper/state")["payload"] == "kept"

    token = sign_principal(BridgePrincipal(TENANT, 7, "bob", "viewer"))
    newcomer = clients(bridge_client(broker, "portal-newcomer", token)).connect()
    newcomer.subscribe("devices/retainer/#", qos=1)
    newcomer.subscribe("devices/keeper/#", qos=1)
    # Retained messages come right after each SUBACK: the keeper's arrives, none of the subtree's.
    assert [(m.topic, m.payload) for m in newcomer.expect(1)] == [("devices/keeper/state", b"kept")]
    newcomer.expect_none(0.3)
