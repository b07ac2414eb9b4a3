"""Browsers speak MQTT over WebSockets at the web service's /mqtt, with their portal session.

A real daphne web process relays to a real platform broker's bridge listener; the browser is
stood in for by paho-mqtt over WebSockets and by a raw WebSocket client (wsproto) where the
test needs control over the frames. Devices are real mTLS clients.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from broker.mqtt import (
    Connack,
    Connect,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Subscription,
    encode,
)
from tests.broker.conftest import Client
from tests.broker.integration.platform_harness import (
    Bundle,
    Platform,
    PlatformBroker,
    PlatformWeb,
    device_client,
)
from tests.broker.integration.wss_client import WsMqtt, ws_client

HOME = "it-wss"
OTHER = "it-wss-other"
PASSWORD = "wss-password-1"  # noqa: S105 (a test user's)
NOT_AUTHORIZED = {5: 0x87, 4: 5}
BAD_USER_NAME = {5: 0x86, 4: 4}


@pytest.fixture(scope="module")
def registry(platform: Platform) -> dict[str, Bundle]:
    for slug in (HOME, OTHER):
        platform.call("tenant_create", slug=slug)
    platform.call("user_create", username="wss-viewer", password=PASSWORD, tenants={HOME: "viewer"})
    platform.call("user_create", username="wss-operator", password=PASSWORD, tenants={HOME: "operator"})
    platform.call("user_create", username="wss-other", password=PASSWORD, tenants={OTHER: "owner"})
    platform.call("user_create", username="wss-both", password=PASSWORD,
                  tenants={HOME: "viewer", OTHER: "viewer"})
    platform.call("user_create", username="wss-staff", password=PASSWORD, staff=True)
    return {"thermo": platform.device(HOME, "thermo"), "spy": platform.device(OTHER, "spy")}


@pytest.fixture(scope="module")
def sessions(platform: Platform, registry: dict[str, Bundle]) -> dict[str, str]:
    """A signed-in session per test user: the sessionid a browser would send."""
    names = ("wss-viewer", "wss-operator", "wss-other", "wss-both", "wss-staff")
    return {name: str(platform.call("session_create", username=name)) for name in names}


@pytest.fixture
def ws(web: PlatformWeb) -> Iterator[Callable[..., WsMqtt]]:
    made: list[WsMqtt] = []

    def open_ws(**kwargs: object) -> WsMqtt:
        client = WsMqtt(web, **kwargs)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield open_ws
    for client in made:
        client.close()


def _device(broker: PlatformBroker, bundle: Bundle, clients: Callable[[Client], Client]) -> Client:
    return clients(device_client(broker, bundle)).connect()


# The handshake ------------------------------------------------------------------------------


def test_a_foreign_origin_is_refused_with_403_before_any_mqtt(ws, sessions) -> None:
    client = ws(session=sessions["wss-viewer"], origin="https://evil.example")
    assert client.status == 403


def test_a_missing_origin_is_refused_with_403(ws, sessions) -> None:
    client = ws(session=sessions["wss-viewer"], origin=None)
    assert client.status == 403


def test_the_configured_origin_is_accepted_with_the_mqtt_subprotocol(ws, sessions) -> None:
    client = ws(session=sessions["wss-viewer"])
    assert (client.status, client.subprotocol) == (101, "mqtt")


def test_a_handshake_without_the_mqtt_subprotocol_is_refused(ws, sessions) -> None:
    assert ws(session=sessions["wss-viewer"], subprotocols=("chat",)).status == 403


def test_another_websocket_path_is_refused_rather_than_failing(ws, sessions) -> None:
    assert ws(session=sessions["wss-viewer"], path="/elsewhere").status == 403


# Who connects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [5, 4])
def test_a_browser_without_a_session_gets_connack_not_authorized(ws, level) -> None:
    client = ws(level=level)
    connack = client.connect(HOME)
    assert isinstance(connack, Connack) and connack.reason_code == NOT_AUTHORIZED[level]
    assert client.closed()


def test_an_unknown_session_cookie_gets_connack_not_authorized(ws) -> None:
    connack = ws(session="no-such-session-key").connect(HOME)
    assert isinstance(connack, Connack) and connack.reason_code == 0x87


@pytest.mark.parametrize("level", [5, 4])
def test_a_signed_in_member_connects_to_their_tenant(ws, sessions, level) -> None:
    connack = ws(session=sessions["wss-viewer"], level=level).connect(HOME)
    assert isinstance(connack, Connack) and connack.reason_code == 0


@pytest.mark.parametrize("tenant", [OTHER, "no-such-tenant"])
def test_a_tenant_the_user_is_not_a_member_of_is_refused_alike(ws, sessions, tenant) -> None:
    connack = ws(session=sessions["wss-viewer"]).connect(tenant)
    assert isinstance(connack, Connack) and connack.reason_code == 0x87


def test_an_empty_user_name_picks_the_users_only_tenant(ws, sessions) -> None:
    connack = ws(session=sessions["wss-viewer"]).connect(None)
    assert isinstance(connack, Connack) and connack.reason_code == 0


@pytest.mark.parametrize("level", [5, 4])
def test_an_empty_user_name_is_refused_when_the_user_has_several_tenants(ws, sessions, level) -> None:
    connack = ws(session=sessions["wss-both"], level=level).connect(None)
    assert isinstance(connack, Connack) and connack.reason_code == BAD_USER_NAME[level]


def test_platform_staff_may_name_any_tenant(ws, sessions) -> None:
    connack = ws(session=sessions["wss-staff"]).connect(OTHER)
    assert isinstance(connack, Connack) and connack.reason_code == 0


def test_the_mqtt_password_plays_no_part(ws, sessions) -> None:
    connack = ws(session=sessions["wss-viewer"]).connect(HOME, password=b"anything at all")
    assert isinstance(connack, Connack) and connack.reason_code == 0


# What a browser sees and may do -----------------------------------------------------------------


def test_a_device_publishing_over_mtls_reaches_the_browser(web, broker, registry, sessions, clients) -> None:
    browser = clients(ws_client(web, sessions["wss-viewer"], "explorer", tenant=HOME)).connect()
    assert browser.subscribe("devices/#") == [0]
    _device(broker, registry["thermo"], clients).publish("devices/thermo/temp", b"21.5")
    message = browser.expect()[0]
    assert (message.topic, message.payload) == ("devices/thermo/temp", b"21.5")


@pytest.mark.parametrize("topic_filter", ["#", "+/#", "devices/#", "$roost/#", "$SYS/#"])
def test_a_user_of_one_tenant_sees_nothing_of_another_whatever_the_filter(
        web, broker, registry, sessions, clients, topic_filter) -> None:
    spy = clients(ws_client(web, sessions["wss-other"], "spy-tab", tenant=OTHER)).connect()
    spy.subscribe(topic_filter)
    spy.collect(0.3)  # whatever was retained before this test
    home = _device(broker, registry["thermo"], clients)
    home.publish("devices/thermo/secret", b"home only", qos=1)
    home.disconnect()  # presence events are the home tenant's too
    spy.expect_none(1.0)


def test_the_other_tenants_browser_gets_its_own_devices_messages(web, broker, registry, sessions, clients) -> None:
    spy = clients(ws_client(web, sessions["wss-other"], "spy-tab-2", tenant=OTHER)).connect()
    spy.subscribe("#")
    spy.collect(0.3)
    _device(broker, registry["spy"], clients).publish("devices/spy/temp", b"own")
    assert [m.payload for m in spy.expect()] == [b"own"]


def test_a_viewers_publish_is_refused_with_puback_not_authorized(ws, sessions) -> None:
    client = ws(session=sessions["wss-viewer"])
    assert client.connect(HOME).reason_code == 0
    client.frame(Publish("devices/thermo/cmd", b"on", qos=1, packet_id=7))
    puback = client.next()
    assert isinstance(puback, Puback) and (puback.packet_id, puback.reason_code) == (7, 0x87)


def test_an_operators_publish_reaches_a_subscribed_device(web, broker, registry, sessions, clients) -> None:
    device = _device(broker, registry["thermo"], clients)
    device.subscribe("devices/thermo/cmd", qos=1)
    operator = clients(ws_client(web, sessions["wss-operator"], "console", tenant=HOME)).connect()
    operator.publish("devices/thermo/cmd", b"heat", qos=1)
    assert [m.payload for m in device.expect()] == [b"heat"]


def test_a_browser_naming_a_device_as_client_id_does_not_take_over_its_session(
        web, broker, registry, sessions, clients) -> None:
    device = _device(broker, registry["thermo"], clients)
    clients(ws_client(web, sessions["wss-operator"], "thermo", tenant=HOME)).connect()
    device.subscribe("devices/thermo/still-here")  # answered: the device was not disconnected
    assert not device.disconnected.is_set()


# Frames and packets ----------------------------------------------------------------------------


def test_a_connect_split_across_frames_works(ws, sessions) -> None:
    client = ws(session=sessions["wss-viewer"])
    packet = encode(Connect(protocol_level=5, client_id="split", username=HOME), 5)
    for offset in range(len(packet)):
        client.frame(packet[offset:offset + 1])
    connack = client.next()
    assert isinstance(connack, Connack) and connack.reason_code == 0


def test_several_packets_in_one_frame_work(ws, sessions) -> None:
    client = ws(session=sessions["wss-operator"])
    client.frame(encode(Connect(protocol_level=5, client_id="bundled", username=HOME), 5)
                 + encode(Subscribe(1, [Subscription("devices/thermo/echo", 1)]), 5)
                 + encode(Publish("devices/thermo/echo", b"one frame", qos=1, packet_id=2), 5))
    got = [client.next() for _ in range(4)]
    assert isinstance(got[0], Connack) and got[0].reason_code == 0
    assert any(isinstance(p, Suback) and p.reason_codes == [1] for p in got)
    assert any(isinstance(p, Puback) and p.reason_code == 0 for p in got)
    assert any(isinstance(p, Publish) and p.payload == b"one frame" for p in got)


def test_a_publish_split_across_frames_after_connect_works(ws, sessions) -> None:
    client = ws(session=sessions["wss-operator"])
    assert client.connect(HOME, client_id="pieces").reason_code == 0
    client.frame(Subscribe(1, [Subscription("devices/thermo/pieces", 0)]))
    assert isinstance(client.next(), Suback)
    packet = encode(Publish("devices/thermo/pieces", b"x" * 300, qos=0), 5)
    for start in range(0, len(packet), 7):
        client.frame(packet[start:start + 7])
    message = client.next()
    assert isinstance(message, Publish) and message.payload == b"x" * 300


def test_a_text_frame_closes_the_connection(ws, sessions) -> None:
    client = ws(session=sessions["wss-viewer"])
    client.text("CONNECT")
    assert client.closed()


def test_a_first_packet_other_than_connect_closes_the_connection(ws, sessions) -> None:
    client = ws(session=sessions["wss-viewer"])
    client.frame(Subscribe(1, [Subscription("#", 0)]))
    assert client.closed()


def test_a_connect_that_never_ends_is_refused_by_its_length_prefix(ws, sessions) -> None:
    client = ws(session=sessions["wss-viewer"])
    client.frame(b"\x10\xff\xff\xff\x7f")  # 256 MiB announced
    assert client.closed()


def _malformed(rng: random.Random, level: int) -> list[bytes]:
    """Frames no MQTT server may accept, in the shapes a fuzzer or a broken client sends."""
    kind = rng.randrange(6)
    if kind == 0:
        # Garbage; not starting like a CONNECT, whose unfinished prefix is merely waited for.
        first = rng.choice([b for b in range(256) if b >> 4 != 1])
        return [bytes((first, *(rng.randrange(256) for _ in range(rng.randrange(63)))))]
    if kind == 1:
        return [b"\x10\xff\xff\xff\xff\x01"]  # a length of five bytes
    if kind == 2:
        return [b"\x10" + bytes((0x80 | rng.randrange(128), 0xFF, 0x7F))]  # far too large
    if kind == 3:
        good = encode(Connect(protocol_level=level, client_id="bad", username=HOME), level)
        return [good[:8] + b"\x01" + good[9:]]  # reserved CONNECT flag set
    if kind == 4:
        return [b"\x10\x0c\x00\x04MQTX\x05\x02\x00\x3c\x00\x00"]  # not the MQTT protocol name
    return [b"\x30\x05\x00\x01a\x00\x00", b"\x10"]  # PUBLISH before CONNECT


def test_the_broker_and_the_web_service_stay_up_after_1000_malformed_frames(
        web, broker, registry, sessions, clients) -> None:
    rng = random.Random(13)
    frames = 0
    while frames < 1000:
        client = WsMqtt(web, session=sessions["wss-viewer"])
        try:
            for data in _malformed(rng, rng.choice((4, 5))):
                client.frame(data)
                frames += 1
            assert client.closed(), "a bad connection stayed open"
        finally:
            client.close()
    # A connection that went bad after a good CONNECT is the broker's to close.
    for _ in range(5):
        client = WsMqtt(web, session=sessions["wss-operator"])
        try:
            assert client.connect(HOME).reason_code == 0
            client.frame(b"\x82\xff\xff\xff\x7f")
            assert client.closed()
        finally:
            client.close()
    assert web.proc is not None and web.proc.poll() is None
    assert broker.proc is not None and broker.proc.poll() is None
    browser = clients(ws_client(web, sessions["wss-viewer"], "after-the-storm", tenant=HOME)).connect()
    browser.subscribe("devices/thermo/after")
    _device(broker, registry["thermo"], clients).publish("devices/thermo/after", b"still fine")
    assert [m.payload for m in browser.expect()] == [b"still fine"]

