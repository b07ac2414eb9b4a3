"""A tenant's back end connects with an API key on the service listener (TLS, no client
certificate): user name = the key's prefix, password = the key. It acts in its tenant's
namespace with the ACL rules written for service <key name>, and loses its connection the
moment the key is revoked, expires or its tenant is disabled."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes

from tests.broker.conftest import Client, props
from tests.broker.integration.platform_harness import (
    Bundle,
    Platform,
    PlatformBroker,
    PlatformWeb,
    connack_code,
    device_client,
    eventually,
    service_client,
)

HOME = "it-svc"
OTHER = "it-svc-other"
PAUSED = "it-svc-paused"
ADMINISTRATIVE_ACTION = 0x98
NOT_AUTHORIZED = 0x87
BAD_USER_NAME_OR_PASSWORD = {5: 0x86, 4: 4}
CLIENT_ID_NOT_VALID = {5: 0x85, 4: 2}


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
    for slug in (HOME, OTHER, PAUSED):
        platform.call("tenant_create", slug=slug)
    platform.call("rule_create", tenant=HOME, subject_kind="service", subject_service="telemetry-consumer",
                  action="subscribe", topic_filter="devices/+/telemetry")
    platform.call("rule_create", tenant=HOME, subject_kind="service", subject_service="commander",
                  action="publish", topic_filter="devices/+/cmd")
    platform.call("rule_create", tenant=HOME, subject_kind="service", subject_service="everything",
                  action="both", topic_filter="#")
    return {"thermo": platform.device(HOME, "thermo"), "spy": platform.device(OTHER, "spy")}


@pytest.fixture(scope="module")
def admin_key(platform: Platform) -> str:
    return str(platform.call("api_key_create", tenant=HOME, role="admin", name="it-admin"))


def _key(broker: PlatformBroker, name: str, tenant: str = HOME, **args: Any) -> str:
    """A new viewer key, once the broker has it (it arrives through the change feed)."""
    key = str(broker.platform.call("api_key_create", tenant=tenant, role="viewer", name=name, **args))
    eventually(lambda: _code(broker, key, level=5) == 0)
    return key


def _prefix(key: str) -> str:
    return "_".join(key.split("_")[:2])


def _root_ca(broker: PlatformBroker) -> str:
    return str(broker.platform.data_dir / "pki" / "root-ca.pem")


def _code(broker: PlatformBroker, key: str | None, *, level: int, username: str | None = None,
          client_id: str = "probe") -> int | None:
    """The CONNACK code the service listener answers, straight off the wire."""
    if username is None and key is not None:
        username = _prefix(key)
    return connack_code(broker.service_port, _root_ca(broker), None, None, client_id, level=level,
                        username=username, password=key)


def _puback(client: Client, topic: str) -> int:
    codes: dict[int, int] = {}
    client.client.on_publish = lambda _c, _u, mid, reason, _p: codes.__setitem__(mid, reason.value)
    info = client.client.publish(topic, b"x", qos=1)
    info.wait_for_publish(5)
    return codes[info.mid]


def _kicked_within(client: Client, seconds: float) -> float:
    started = time.monotonic()
    assert client.disconnected.wait(seconds), f"still connected after {seconds}s"
    return time.monotonic() - started


# What a service may do ------------------------------------------------------------------------


def test_a_service_with_a_subscribe_rule_receives_a_devices_telemetry(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    key = _key(broker, "telemetry-consumer")
    consumer = clients(service_client(broker, key, "consumer-1")).connect()
    assert [g.value for g in consumer.subscribe("devices/+/telemetry", qos=1)] == [1]
    device = clients(device_client(broker, registry["thermo"])).connect()
    device.publish("devices/thermo/telemetry", b'{"t":21.5}', qos=1)
    [message] = consumer.expect(1)
    assert (message.topic, message.payload) == ("devices/thermo/telemetry", b'{"t":21.5}')


def test_a_service_may_do_only_what_its_rules_allow(
        broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    key = _key(broker, "telemetry-consumer")
    consumer = clients(service_client(broker, key, "consumer-2")).connect()
    assert [g.value for g in consumer.subscribe("devices/+/state", qos=1)] == [NOT_AUTHORIZED]
    assert _puback(consumer, "devices/thermo/telemetry") == NOT_AUTHORIZED


def test_a_service_without_rules_may_neither_subscribe_nor_publish(
        broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    key = _key(broker, "no-rules-yet")
    idle = clients(service_client(broker, key, "idle")).connect()
    for topic_filter in ("#", "devices/+/telemetry", "$roost/presence/#", "devices/thermo/cmd"):
        assert [g.value for g in idle.subscribe(topic_filter, qos=1)] == [NOT_AUTHORIZED], topic_filter
    assert _puback(idle, "devices/thermo/cmd") == NOT_AUTHORIZED


def test_a_commanders_message_reaches_the_device(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    key = _key(broker, "commander")
    commander = clients(service_client(broker, key, "commander-1", version=4)).connect()
    device = clients(device_client(broker, registry["thermo"])).connect()
    device.subscribe("devices/thermo/cmd", qos=1)
    commander.publish("devices/thermo/cmd", b"reboot", qos=1)
    assert [m.payload for m in device.expect(1)] == [b"reboot"]


def test_a_service_never_sees_another_tenants_topics(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    key = _key(broker, "everything")
    watcher = clients(service_client(broker, key, "watcher")).connect()
    for topic_filter in ("#", f"{OTHER}/#", "+/devices/spy/#", "devices/spy/#"):
        assert [g.value for g in watcher.subscribe(topic_filter, qos=1)] == [1], topic_filter
    spy = clients(device_client(broker, registry["spy"])).connect()
    spy.publish("devices/spy/telemetry", b"secret", qos=1, retain=True)
    device = clients(device_client(broker, registry["thermo"])).connect()
    device.publish("devices/thermo/telemetry", b"ours", qos=1)
    received = [(m.topic, m.payload) for m in watcher.collect(1.0)]
    assert ("devices/thermo/telemetry", b"ours") in received
    assert not any(payload == b"secret" for _, payload in received), received
    # Publishing to the other tenant's device lands in this tenant's own namespace.
    spy.subscribe("devices/spy/cmd", qos=1)
    watcher.publish(f"{OTHER}/devices/spy/cmd", b"intrude", qos=1)
    watcher.publish("devices/spy/cmd", b"intrude", qos=1)
    spy.expect_none(0.5)


def test_rules_follow_the_key_name_so_a_rotated_key_keeps_the_same_rights(
        broker: PlatformBroker, platform: Platform, admin_key: str, web: PlatformWeb, clients: Any) -> None:
    old = _key(broker, "telemetry-consumer")
    status, _, _ = web.request("DELETE", f"/api/v1/tenants/{HOME}/api-keys/{_prefix(old)}/", admin_key)
    assert status == 204
    new = _key(broker, "telemetry-consumer")
    consumer = clients(service_client(broker, new, "rotated")).connect()
    assert [g.value for g in consumer.subscribe("devices/+/telemetry", qos=1)] == [1]


# Who may connect ------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [5, 4])
def test_the_right_key_with_its_prefix_as_user_name_is_accepted(
        broker: PlatformBroker, platform: Platform, level: int) -> None:
    key = _key(broker, "accepted")
    assert _code(broker, key, level=level) == 0


@pytest.mark.parametrize("level", [5, 4])
def test_a_wrong_password_is_refused(broker: PlatformBroker, platform: Platform, level: int) -> None:
    key = _key(broker, "guessed")
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    before = broker.metric("roost_broker_authentication_failures_total", reason="wrong API key")
    assert _code(broker, wrong, level=level) == BAD_USER_NAME_OR_PASSWORD[level]
    assert broker.metric("roost_broker_authentication_failures_total", reason="wrong API key") == before + 1


@pytest.mark.parametrize("level", [5, 4])
def test_an_unknown_prefix_is_refused(broker: PlatformBroker, level: int) -> None:
    unknown = "rk_000000000000_" + "A" * 43
    assert _code(broker, unknown, level=level) == BAD_USER_NAME_OR_PASSWORD[level]


@pytest.mark.parametrize("level", [5, 4])
def test_a_user_name_other_than_the_keys_prefix_is_refused(
        broker: PlatformBroker, platform: Platform, level: int) -> None:
    key = _key(broker, "misnamed")
    other_prefix = _prefix(_key(broker, "other"))
    assert _code(broker, key, level=level, username=other_prefix) == BAD_USER_NAME_OR_PASSWORD[level]
    assert _code(broker, key, level=level, username="telemetry-consumer") == BAD_USER_NAME_OR_PASSWORD[level]


@pytest.mark.parametrize("level", [5, 4])
def test_no_password_or_a_malformed_one_is_refused(broker: PlatformBroker, level: int) -> None:
    assert _code(broker, None, level=level) == BAD_USER_NAME_OR_PASSWORD[level]
    assert _code(broker, "not-a-key", level=level, username="rk_000000000000") == BAD_USER_NAME_OR_PASSWORD[level]


@pytest.mark.parametrize("level", [5, 4])
def test_an_expired_key_is_refused(broker: PlatformBroker, platform: Platform, level: int) -> None:
    key = _key(broker, "short-lived", expires_days=1)
    platform.call("api_key_expire_in", prefix=_prefix(key), seconds=-60)
    assert eventually(lambda: _code(broker, key, level=level) == BAD_USER_NAME_OR_PASSWORD[level])
    assert broker.metric("roost_broker_authentication_failures_total", reason="API key expired") >= 1


@pytest.mark.parametrize("level", [5, 4])
def test_a_revoked_key_is_refused(
        broker: PlatformBroker, platform: Platform, admin_key: str, web: PlatformWeb, level: int) -> None:
    key = _key(broker, "revoked-at-rest")
    assert web.request("DELETE", f"/api/v1/tenants/{HOME}/api-keys/{_prefix(key)}/", admin_key)[0] == 204
    assert eventually(lambda: _code(broker, key, level=level) == BAD_USER_NAME_OR_PASSWORD[level])


@pytest.mark.parametrize("level", [5, 4])
def test_a_service_cannot_take_a_devices_client_id(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], level: int) -> None:
    key = _key(broker, "impostor")
    assert _code(broker, key, level=level, client_id="thermo") == CLIENT_ID_NOT_VALID[level]
    assert _code(broker, key, level=level, client_id="spy") == 0  # a device of another tenant


# Losing the connection ------------------------------------------------------------------------


def test_revoking_the_key_through_the_api_disconnects_its_client_within_a_second_and_refuses_its_return(
        broker: PlatformBroker, platform: Platform, admin_key: str, web: PlatformWeb, clients: Any) -> None:
    key = _key(broker, "telemetry-consumer")
    consumer = clients(service_client(broker, key, "to-be-revoked")).connect()
    bystander = clients(service_client(broker, _key(broker, "telemetry-consumer"), "bystander")).connect()
    status, _, _ = web.request("DELETE", f"/api/v1/tenants/{HOME}/api-keys/{_prefix(key)}/", admin_key)
    assert status == 204
    _kicked_within(consumer, 1.0)
    assert consumer.disconnect_reason.value == ADMINISTRATIVE_ACTION
    assert _code(broker, key, level=5) == 0x86
    assert not bystander.disconnected.is_set()
    assert [g.value for g in bystander.subscribe("devices/+/telemetry", qos=1)] == [1]


def test_a_key_that_expires_while_connected_disconnects_its_client_at_expiry(
        broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    key = _key(broker, "telemetry-consumer", expires_days=1)
    consumer = clients(service_client(broker, key, "expiring")).connect()
    platform.call("api_key_expire_in", prefix=_prefix(key), seconds=2)
    set_at = time.monotonic()
    time.sleep(1.0)  # the new expiry has reached the broker; the key is still good
    assert not consumer.disconnected.is_set()
    assert consumer.disconnected.wait(4), "still connected 5 s after setting a 2 s expiry"
    assert time.monotonic() - set_at >= 1.5
    assert consumer.disconnect_reason.value == ADMINISTRATIVE_ACTION
    assert _code(broker, key, level=5) == 0x86


def test_disabling_the_tenant_disconnects_its_services_within_a_second(
        broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    key = _key(broker, "paused-consumer", tenant=PAUSED)
    consumer = clients(service_client(broker, key, "paused")).connect()
    platform.call("tenant_enable", slug=PAUSED, enabled=False)
    _kicked_within(consumer, 1.0)
    assert consumer.disconnect_reason.value == ADMINISTRATIVE_ACTION
    assert eventually(lambda: _code(broker, key, level=5) == 0x86)
    platform.call("tenant_enable", slug=PAUSED, enabled=True)
    assert eventually(lambda: _code(broker, key, level=5) == 0)


def test_a_persistent_service_session_keeps_its_subscription_across_a_broker_restart(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle], clients: Any) -> None:
    key = _key(broker, "telemetry-consumer")
    expiry = props(PacketTypes.CONNECT, SessionExpiryInterval=3600)
    consumer = clients(service_client(broker, key, "durable")).connect(clean=False, properties=expiry)
    assert [g.value for g in consumer.subscribe("devices/+/telemetry", qos=1)] == [1]
    consumer.disconnect()
    broker.restart()
    device = clients(device_client(broker, registry["thermo"])).connect()
    device.publish("devices/thermo/telemetry", b"while away", qos=1)
    back = clients(service_client(broker, key, "durable")).connect(clean=False, properties=expiry)
    assert back.session_present
    assert [m.payload for m in back.expect(1)] == [b"while away"]


# Listeners keep their credentials apart -------------------------------------------------------


def test_a_device_certificate_on_the_service_port_is_not_a_device_identity(
        broker: PlatformBroker, registry: dict[str, Bundle]) -> None:
    bundle = registry["thermo"]
    # The service listener asks for no client certificate; without a key the device is refused.
    assert connack_code(broker.service_port, bundle.ca, bundle.cert, bundle.key, "thermo", level=5) == 0x86
    assert connack_code(broker.service_port, bundle.ca, bundle.cert, bundle.key, "thermo", level=4) == 4


def test_an_api_key_on_the_device_port_is_refused(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle]) -> None:
    key = _key(broker, "wrong-door")
    bundle = registry["thermo"]
    with pytest.raises((ssl.SSLError, ConnectionError)):  # no certificate: no TLS session at all
        connack_code(broker.port, bundle.ca, None, None, "wrong-door", level=5,
                     username=_prefix(key), password=key)
    # Beside a device's certificate the key is only a wrong user name.
    assert connack_code(broker.port, bundle.ca, bundle.cert, bundle.key, "thermo", level=5,
                        username=_prefix(key), password=key) == 0x86


def test_the_service_listener_is_off_unless_its_port_is_set(platform: Platform) -> None:
    default = PlatformBroker(platform)
    try:
        default.start()
        listening = [line for line in default.lines if "listening on" in line]
        assert len(listening) == 2, listening  # devices and the bridge
        assert not any("service clients" in line for line in default.lines)
    finally:
        default.kill()
