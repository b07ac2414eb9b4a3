"""A browser's /mqtt session ends within 5 seconds of its Django session ending, and every
user is held to a number of connections, a PUBLISH rate and a packet size; the endpoint's
metrics say what it is doing. (The endpoint itself: test_platform_wss.py.)"""

from __future__ import annotations

import itertools
import re
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from broker.mqtt import Connack, Disconnect, Publish, Suback, Subscribe, Subscription, encode
from tests.broker.integration.platform_harness import (
    Bundle,
    Platform,
    PlatformBroker,
    PlatformWeb,
    device_client,
    eventually,
)
from tests.broker.integration.wss_client import Browser, WsMqtt, ws_client
from tests.conftest import free_port

HOME = "it-wss-s"
PASSWORD = "wss-password-1"  # noqa: S105 (a test user's)
MAX_CONNECTIONS = 3
MAX_RATE = 20
MAX_PACKET = 4096
FLOOD = 20_000
_names = itertools.count()


class LimitedWeb(PlatformWeb):
    """The web service with small per-user limits, so that tests reach them quickly."""

    def env(self) -> dict[str, str]:
        return dict(super().env(), ROOST_MQTT_WS_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
                    ROOST_MQTT_WS_MAX_RATE=str(MAX_RATE), ROOST_MQTT_WS_MAX_PACKET=str(MAX_PACKET))


@pytest.fixture(scope="module")
def web(platform: Platform, broker: PlatformBroker) -> Iterator[PlatformWeb]:
    process = LimitedWeb(platform, broker)
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture(scope="module")
def registry(platform: Platform) -> dict[str, Bundle]:
    platform.call("tenant_create", slug=HOME)
    return {"pump": platform.device(HOME, "pump")}


@pytest.fixture
def user(platform: Platform, registry: dict[str, Bundle]) -> Callable[..., tuple[str, str]]:
    """A new operator of HOME (or another role) with a signed-in session: (name, session key)."""

    def make(role: str = "operator") -> tuple[str, str]:
        name = f"wss-user-{next(_names)}"
        platform.call("user_create", username=name, password=PASSWORD, tenants={HOME: role})
        return name, str(platform.call("session_create", username=name))

    return make


@pytest.fixture
def ws(web: PlatformWeb) -> Iterator[Callable[..., WsMqtt]]:
    made: list[WsMqtt] = []

    def open_ws(session: str, level: int = 5) -> WsMqtt:
        client = WsMqtt(web, session=session, level=level)
        made.append(client)
        return client

    yield open_ws
    for client in made:
        client.close()


def _connected(client: WsMqtt, client_id: str = "") -> WsMqtt:
    connack = client.connect(HOME, client_id=client_id)
    assert isinstance(connack, Connack) and connack.reason_code == 0, connack
    return client


def _ended_with(client: WsMqtt, within: float = 5.0) -> int | None:
    """The DISCONNECT reason the endpoint sent before closing within `within` seconds."""
    started = time.monotonic()
    assert client.closed(within), "still open"
    assert time.monotonic() - started <= within
    reasons = [p.reason_code for p in client.packets if isinstance(p, Disconnect)]
    return reasons[-1] if reasons else None


# Sessions end with the Django session ----------------------------------------------------------


def test_signing_out_in_another_tab_closes_the_socket_within_5_seconds(web, ws, user) -> None:
    name, _ = user()
    tab = Browser(web)
    client = _connected(ws(tab.login(name, PASSWORD)))
    tab.logout()
    assert _ended_with(client) == 0x87


def test_the_signed_in_session_keeps_the_socket_open(ws, user) -> None:
    _, session = user()
    client = _connected(ws(session))
    assert not client.closed(3.0)


def test_deleting_the_session_closes_the_socket(platform, ws, user) -> None:
    _, session = user()
    client = _connected(ws(session))
    platform.call("session_delete", key=session)
    assert _ended_with(client) == 0x87


def test_changing_the_password_closes_the_socket(platform, ws, user) -> None:
    name, session = user()
    client = _connected(ws(session))
    platform.call("user_set_password", username=name, password="another-password-2")
    assert _ended_with(client) == 0x87


def test_deactivating_the_user_closes_the_socket(platform, ws, user) -> None:
    name, session = user()
    client = _connected(ws(session))
    platform.call("user_set_active", username=name, active=False)
    assert _ended_with(client) == 0x98


def test_removing_the_membership_closes_the_socket(platform, ws, user) -> None:
    name, session = user()
    client = _connected(ws(session))
    platform.call("member_remove", username=name, tenant=HOME)
    assert _ended_with(client) == 0x98


def test_a_changed_role_closes_the_socket_so_the_browser_reconnects_with_it(platform, ws, user) -> None:
    name, session = user("operator")
    client = _connected(ws(session))
    platform.call("member_role", username=name, tenant=HOME, role="viewer")
    assert _ended_with(client) == 0x98
    assert _connected(ws(session))  # the same session, now as a viewer


def test_an_mqtt_3_1_1_browser_is_closed_without_a_disconnect(platform, ws, user) -> None:
    _, session = user()
    client = _connected(ws(session, level=4))
    platform.call("session_delete", key=session)
    assert _ended_with(client) is None


# Limits per user ------------------------------------------------------------------------------


def test_a_user_may_hold_only_so_many_connections(ws, user) -> None:
    _, session = user()
    for n in range(MAX_CONNECTIONS):
        _connected(ws(session), f"tab-{n}")
    connack = ws(session).connect(HOME, client_id="one-too-many")
    assert isinstance(connack, Connack) and connack.reason_code == 0x97


def test_a_closed_connection_frees_its_place(ws, user) -> None:
    _, session = user()
    first, *_ = [_connected(ws(session), f"tab-{n}") for n in range(MAX_CONNECTIONS)]
    first.close()
    eventually(lambda: ws(session).connect(HOME, client_id="next").reason_code == 0)


def test_another_users_connections_do_not_count(ws, user) -> None:
    _, busy = user()
    for n in range(MAX_CONNECTIONS):
        _connected(ws(busy), f"tab-{n}")
    _, other = user()
    assert _connected(ws(other))


def test_an_mqtt_3_1_1_browser_over_the_limit_gets_return_code_5(ws, user) -> None:
    _, session = user()
    for n in range(MAX_CONNECTIONS):
        _connected(ws(session), f"tab-{n}")
    connack = ws(session, level=4).connect(HOME, client_id="v311")
    assert isinstance(connack, Connack) and connack.reason_code == 5


def test_a_packet_over_the_size_limit_ends_the_session_with_0x95(ws, user) -> None:
    _, session = user()
    client = _connected(ws(session))
    client.frame(encode(Publish("devices/pump/big", b"x" * MAX_PACKET, qos=0), 5)[:100])
    assert _ended_with(client) == 0x95


def test_a_packet_within_the_size_limit_goes_through(ws, user) -> None:
    _, session = user()
    client = _connected(ws(session))
    client.frame(Subscribe(1, [Subscription("devices/pump/big", 0)]))
    assert isinstance(client.next(), Suback)
    client.frame(Publish("devices/pump/big", b"x" * (MAX_PACKET - 100), qos=0))
    message = client.next()
    assert isinstance(message, Publish) and len(message.payload) == MAX_PACKET - 100


def test_publishing_faster_than_the_rate_ends_the_session_with_0x96(ws, user) -> None:
    _, session = user()
    client = _connected(ws(session))
    burst = b"".join(encode(Publish("devices/pump/fast", b"%d" % n, qos=0), 5) for n in range(MAX_RATE * 3))
    client.frame(burst)
    assert _ended_with(client) == 0x96


def test_publishing_within_the_rate_is_fine(ws, user) -> None:
    _, session = user()
    client = _connected(ws(session))
    for n in range(MAX_RATE // 2):
        client.frame(Publish("devices/pump/calm", b"%d" % n, qos=0))
    assert not client.closed(2.5)


def test_the_rate_holds_per_user_across_connections(ws, user) -> None:
    _, session = user()
    tabs = [_connected(ws(session), f"tab-{n}") for n in range(MAX_CONNECTIONS)]
    burst = b"".join(encode(Publish("devices/pump/spread", b"x", qos=0), 5) for _ in range(MAX_RATE - 2))
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and not any(t.closed(0.01) for t in tabs):
        for tab in tabs:  # each alone stays well under the rate, together they are over it
            tab.frame(burst)
        time.sleep(1.5)
    reasons = {_ended_with(t) for t in tabs if t.closed(0.5)}
    assert reasons == {0x96}


# Operations -------------------------------------------------------------------------------------


def _metrics(web: PlatformWeb) -> str:
    with urllib.request.urlopen(web.url + "/metrics", timeout=5) as response:
        return str(response.read().decode())


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_open_sessions_relayed_bytes_and_refusals(web, ws, user) -> None:
    before = _metrics(web)
    _, session = user()
    client = _connected(ws(session))
    client.frame(Subscribe(1, [Subscription("devices/pump/metrics", 0)]))
    assert isinstance(client.next(), Suback)
    WsMqtt(web, session=session, origin="https://evil.example").close()
    after = _metrics(web)
    assert _value(after, "roost_web_mqtt_sessions") == _value(before, "roost_web_mqtt_sessions") + 1
    for direction in ("to_broker", "to_browser"):
        sample = f'roost_web_mqtt_relayed_bytes_total{{direction="{direction}"}}'
        assert _value(after, sample) > _value(before, sample)
    sample = 'roost_web_mqtt_refusals_total{reason="foreign origin"}'
    assert _value(after, sample) == _value(before, sample) + 1


def test_without_the_broker_a_browser_gets_connack_server_unavailable(platform, broker, user) -> None:
    class Unbridged(PlatformWeb):
        def env(self) -> dict[str, str]:
            return dict(super().env(), ROOST_BROKER_BRIDGE_PORT=str(free_port()))  # nobody there

    _, session = user()
    web = Unbridged(platform, broker).start()
    try:
        client = WsMqtt(web, session=session)
        connack = client.connect(HOME)
        assert isinstance(connack, Connack) and connack.reason_code == 0x88
        client.close()
    finally:
        web.stop()


# Backpressure -----------------------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_browser_that_stops_reading_neither_grows_the_web_process_nor_slows_others(
        web, broker, registry, user, clients) -> None:
    _, session = user("viewer")
    stalled = WsMqtt(web, session=session)
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        _connected(stalled, "stalled")
        stalled.frame(Subscribe(1, [Subscription("devices/pump/flood", 0)]))
        assert isinstance(stalled.next(), Suback)
        _, other = user("viewer")
        watcher = clients(ws_client(web, other, "watcher", tenant=HOME)).connect()
        watcher.subscribe("devices/pump/beat")
        assert web.proc is not None
        baseline = _rss_kib(web.proc.pid)
        device = clients(device_client(broker, registry["pump"])).connect()
        payload = b"f" * 1024
        for _ in range(FLOOD):  # MiBs the stalled browser never reads
            device.client.publish("devices/pump/flood", payload)
        device.publish("devices/pump/flood", b"last", qos=1, timeout=60)  # the broker has it all
        time.sleep(1.0)
        grown = _rss_kib(web.proc.pid) - baseline
        started = time.monotonic()
        device.publish("devices/pump/beat", b"alive", qos=1)
        assert [m.payload for m in watcher.expect(timeout=5)] == [b"alive"]
        assert time.monotonic() - started < 1
        assert grown < 8 * 1024, f"the web process grew by {grown} KiB"
    finally:
        stalled.close()
