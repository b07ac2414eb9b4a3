"""The broker's loopback session view (`GET /sessions?tenant=SLUG` on its metrics port): only
with a fresh signature made with the platform's secret for that tenant; it lists what the broker
holds in memory right now — devices, portal users and services, their subscriptions — and
`/metrics` still answers beside it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import signing
from paho.mqtt.packettypes import PacketTypes

from broker.integration.inspect import HEADER, SALT, sign_request
from broker.integration.inspect_client import BrokerUnavailable, live_sessions
from broker.integration.signed_principals import BridgePrincipal, sign_principal
from tests.broker.conftest import props
from tests.broker.integration.platform_harness import (
    Bundle,
    Platform,
    PlatformBroker,
    bridge_client,
    connack_code,
    device_client,
    eventually,
    service_client,
)
from tests.conftest import free_port

TENANT = "it-inspect"
OTHER = "it-inspect-other"


@pytest.fixture(scope="module")
def broker(platform: Platform) -> Iterator[PlatformBroker]:
    """This module's broker, with the service listener on."""
    process = PlatformBroker(platform, service=True)
    try:
        yield process.start()
    finally:
        process.kill()


@pytest.fixture(scope="module", autouse=True)
def registry(platform: Platform) -> dict[str, Bundle]:
    platform.call("tenant_create", slug=TENANT)
    platform.call("tenant_create", slug=OTHER)
    platform.call("rule_create", tenant=TENANT, subject_kind="service", subject_service="ingest",
                  action="subscribe", topic_filter="devices/+/telemetry")
    return {"probe": platform.device(TENANT, "probe"), "sleeper": platform.device(TENANT, "sleeper"),
            "outsider": platform.device(OTHER, "outsider")}


def _get(broker: PlatformBroker, tenant: str, token: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{broker.metrics_port}/sessions?tenant={tenant}",
                                     headers={HEADER: token} if token is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _sessions(broker: PlatformBroker, tenant: str = TENANT) -> dict[str, dict[str, Any]]:
    status, body = _get(broker, tenant, sign_request(tenant))
    assert status == 200, body
    return {session["client_id"]: session for session in body["sessions"]}


def test_a_request_without_a_signature_is_refused(broker: PlatformBroker) -> None:
    assert _get(broker, TENANT, None)[0] == 403


def test_a_signature_made_with_another_key_or_salt_is_refused(broker: PlatformBroker) -> None:
    forged = signing.dumps({"t": TENANT, "p": "sessions"}, key="not-the-platform-secret-" * 3, salt=SALT)
    assert _get(broker, TENANT, forged)[0] == 403
    other_salt = signing.dumps({"t": TENANT, "p": "sessions"}, salt="roost.broker.bridge.v1")
    assert _get(broker, TENANT, other_salt)[0] == 403
    assert _get(broker, TENANT, "garbage")[0] == 403


def test_a_signature_for_one_tenant_does_not_open_another(broker: PlatformBroker) -> None:
    assert _get(broker, OTHER, sign_request(TENANT))[0] == 403


class _StampedAMinuteAgo(signing.TimestampSigner):
    def timestamp(self) -> str:
        return str(signing.b62_encode(int(time.time()) - 60))


def test_a_signature_older_than_its_lifetime_is_refused(broker: PlatformBroker) -> None:
    stale = _StampedAMinuteAgo(salt=SALT).sign_object({"t": TENANT, "p": "sessions"})
    assert _get(broker, TENANT, stale)[0] == 403
    fresh = signing.TimestampSigner(salt=SALT).sign_object({"t": TENANT, "p": "sessions"})
    assert _get(broker, TENANT, fresh)[0] == 200


def test_a_connected_device_is_listed_with_its_certificate_address_and_subscriptions(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    probe = clients(device_client(broker, registry["probe"])).connect()
    probe.subscribe("devices/probe/cmd/#", qos=1)
    probe.subscribe("devices/probe/config", qos=2)
    session = _sessions(broker)["probe"]
    assert (session["kind"], session["device"], session["connected"], session["protocol_version"]) == (
        "device", "probe", True, 5)
    assert session["certificate_serial"] == registry["probe"].serial
    assert session["remote_address"].startswith("127.0.0.1:")
    assert session["subscriptions"] == [{"filter": "devices/probe/cmd/#", "qos": 1},
                                        {"filter": "devices/probe/config", "qos": 2}]


def test_a_kept_session_of_a_disconnected_device_is_listed_as_not_connected(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    sleeper = clients(device_client(broker, registry["sleeper"]))
    sleeper.connect(clean=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=300))
    sleeper.subscribe("devices/sleeper/wake", qos=1)
    sleeper.disconnect()
    session = eventually(lambda: (s := _sessions(broker).get("sleeper")) and not s["connected"] and s)
    assert (session["remote_address"], session["subscriptions"]) == (None, [{"filter": "devices/sleeper/wake",
                                                                             "qos": 1}])


def test_a_portal_user_and_a_service_are_listed_with_their_role_and_name(
        broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    token = sign_principal(BridgePrincipal(TENANT, 7, "bob", "viewer"))
    portal = clients(bridge_client(broker, "portal-bob-1", token)).connect()
    portal.subscribe("devices/#", qos=0)
    key = str(platform.call("api_key_create", tenant=TENANT, role="operator", name="ingest"))
    root_ca = str(platform.data_dir / "pki" / "root-ca.pem")
    # The key reaches the broker through the change feed.
    eventually(lambda: connack_code(broker.service_port, root_ca, None, None, "ingest-1", level=5,
                                    username="_".join(key.split("_")[:2]), password=key) == 0)
    ingest = clients(service_client(broker, key, "ingest-1")).connect()
    ingest.subscribe("devices/+/telemetry", qos=1)
    sessions = _sessions(broker)
    assert {k: sessions["portal-bob-1"][k] for k in ("kind", "role", "user", "certificate_serial")} == {
        "kind": "role", "role": "viewer", "user": "bob", "certificate_serial": None}
    assert (sessions["ingest-1"]["kind"], sessions["ingest-1"]["service"]) == ("service", "ingest")
    assert sessions["ingest-1"]["subscriptions"] == [{"filter": "devices/+/telemetry", "qos": 1}]


def test_a_tenant_sees_only_its_own_sessions(broker: PlatformBroker, registry: dict[str, Bundle],
                                              clients: Any) -> None:
    clients(device_client(broker, registry["outsider"])).connect()
    assert "outsider" in _sessions(broker, OTHER)
    assert "outsider" not in _sessions(broker, TENANT)


def test_metrics_are_still_served_on_the_same_port(broker: PlatformBroker) -> None:
    assert broker.metric("roost_broker_connections") >= 0
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{broker.metrics_port}/elsewhere", timeout=5)
    assert refused.value.code == 404


def test_the_web_sides_client_reads_the_sessions_the_broker_holds(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    probe = clients(device_client(broker, registry["probe"]))
    probe.connect()
    probe.subscribe("devices/probe/live", qos=1)
    started = time.monotonic()
    sessions = {s.client_id: s for s in live_sessions(TENANT, port=broker.metrics_port)}
    print(f"sessions read in {1000 * (time.monotonic() - started):.1f} ms")
    mine = sessions["probe"]
    assert (mine.kind, mine.device, mine.connected, mine.certificate_serial) == (
        "device", "probe", True, registry["probe"].serial)
    assert ("devices/probe/live", 1) in [(s.topic_filter, s.qos) for s in mine.subscriptions]


def test_the_client_says_the_broker_is_unavailable_when_nothing_listens() -> None:
    with pytest.raises(BrokerUnavailable, match="did not answer"):
        live_sessions(TENANT, port=free_port(), timeout=1)
    with pytest.raises(BrokerUnavailable, match="metrics port is off"):
        live_sessions(TENANT, port=0)


def test_a_tenants_traffic_is_counted_and_its_rate_reported_without_another_tenants(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    from broker.integration.inspect_client import live_view

    before = live_view(TENANT, port=broker.metrics_port)
    other_before = live_view(OTHER, port=broker.metrics_port).messages_received
    probe = clients(device_client(broker, registry["probe"]))
    probe.connect()
    for n in range(40):
        probe.publish("devices/probe/count", str(n).encode(), qos=1)
    after = eventually(lambda: (view := live_view(TENANT, port=broker.metrics_port)).messages_received
                       >= before.messages_received + 40 and view)
    assert live_view(OTHER, port=broker.metrics_port).messages_received == other_before
    # The rate is taken once per window (5 s): within two windows it shows the burst.
    eventually(lambda: live_view(TENANT, port=broker.metrics_port).messages_per_second > 0, timeout=12)
    assert after.sessions, "the same answer lists the sessions"


def test_the_portal_overview_shows_the_tenants_messages_per_second_from_the_broker(
        platform: Platform, broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    from tests.broker.integration.platform_harness import PlatformWeb

    platform.call("user_create", username="ingrid", password="ingrid-password-1", tenants={TENANT: "viewer"})
    session = platform.call("session_create", username="ingrid")
    web = PlatformWeb(platform, broker).start()
    try:
        probe = clients(device_client(broker, registry["probe"]))
        probe.connect()
        for n in range(20):
            probe.publish("devices/probe/overview", str(n).encode(), qos=1)

        def shown() -> str | None:
            status, page, _ = web.request("GET", f"/portal/t/{TENANT}/", headers={"Cookie": f"sessionid={session}"})
            assert status == 200
            text = page.decode()
            return text if 'id="messages-per-second">0<' not in text and "messages-per-second" in text else None

        text = eventually(shown, timeout=12, interval=0.5)
        assert "since the broker started" in text and "did not answer" not in text
    finally:
        web.stop()
