"""The standalone broker's wire defaults are Mosquitto's, byte for byte where it matters."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.config import BridgeSettings, BrokerConfig
from broker.engine.broker import Broker
from broker.mqtt import (
    Connect,
    Disconnect,
    Publish,
    StreamDecoder,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    encode,
)
from broker.net.bridge import Bridge


def raw_connack(port: int, packet: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(packet)
        return sock.recv(256)


def test_the_mqtt5_connack_carries_what_mosquitto_sends_in_its_order(shared_broker):
    connack = raw_connack(shared_broker.port, encode(Connect(protocol_level=5, client_id="c"), 5))
    # Topic alias maximum 10, then receive maximum 20; nothing that restates a default.
    assert connack == b"\x20\x09\x00\x00\x06\x22\x00\x0a\x21\x00\x14"


def test_an_assigned_client_identifier_comes_after_the_topic_alias_maximum(shared_broker):
    connack = raw_connack(shared_broker.port, encode(Connect(protocol_level=5, client_id=""), 5))
    assert connack[5:8] == b"\x22\x00\x0a" and connack[8] == 0x12
    assert connack.endswith(b"\x21\x00\x14")


def test_a_configured_maximum_packet_size_is_told_before_the_receive_maximum(start_broker):
    broker = start_broker("--max-packet-size", "4000", "--max-inflight", "7")
    connack = raw_connack(broker.port, encode(Connect(protocol_level=5, client_id="c"), 5))
    assert connack == b"\x20\x0e\x00\x00\x0b\x22\x00\x0a\x27\x00\x00\x0f\xa0\x21\x00\x07"


def test_a_publish_of_several_megabytes_is_accepted_without_a_configured_limit(
        shared_broker, raw_factory, unique):
    sub = raw_factory(shared_broker.port)
    assert sub.connect(unique + "s").reason_code == 0
    sub.send(Subscribe(1, [Subscription(unique)]))
    sub.receive()
    pub = raw_factory(shared_broker.port)
    assert pub.connect(unique + "p").reason_code == 0
    pub.send(Publish(unique, b"x" * (3 << 20), 0))
    message = sub.receive(timeout=20)
    assert isinstance(message, Publish) and len(message.payload) == 3 << 20


def test_topics_have_mosquittos_level_limit_of_200_separators(shared_broker, raw_factory, unique):
    client = raw_factory(shared_broker.port)
    assert client.connect(unique).reason_code == 0
    deepest = unique + "/a" * 199
    client.send(Subscribe(1, [Subscription(deepest)]))
    assert client.receive() == Suback(1, [0])
    client.send(Publish(deepest, b"deep", 0))
    message = client.receive()
    assert isinstance(message, Publish) and message.topic == deepest
    client.send(Subscribe(2, [Subscription(deepest + "/a")]))
    assert client.receive() == Disconnect(0x81)


def test_unsubscribing_an_invalid_filter_is_a_malformed_packet(shared_broker, raw_factory, unique):
    client = raw_factory(shared_broker.port)
    assert client.connect(unique).reason_code == 0
    client.send(Unsubscribe(1, [unique]))
    assert client.receive() == Unsuback(1, [0x11])
    client.send(Unsubscribe(2, ["#/a", unique]))
    assert client.receive() == Disconnect(0x81)


def test_a_conf_listener_without_allow_anonymous_or_passwords_starts_and_refuses_clients(
        start_broker, raw_factory, tmp_path):
    """Mosquitto 2.0 starts such a listener (a bridge may be all it is for)."""
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener 0 127.0.0.1\n")
    broker = start_broker("--config", str(conf), anonymous=False)
    client = raw_factory(broker.port)
    assert client.connect("nobody").reason_code == 0x87


@contextlib.contextmanager
def bridge_remote(tmp_path: Path, topics: str = "topic a/# out 1\n",
                  extra: str = "") -> Iterator[tuple[socket.socket, Path]]:
    """A bare listening socket as a bridge's remote, and a mosquitto.conf bridging to it."""
    with socket.socket() as remote:
        remote.bind(("127.0.0.1", 0))
        remote.listen(5)
        remote.settimeout(10)
        conf = tmp_path / "bridge.conf"
        conf.write_text(f"listener 0 127.0.0.1\nallow_anonymous true\nconnection edge\n"
                        f"address 127.0.0.1:{remote.getsockname()[1]}\n{topics}{extra}")
        yield remote, conf


def bridge_connect(start_broker, tmp_path, extra: str = "") -> bytes:
    """The first bytes an outgoing bridge sends to a remote broker (a bare socket here)."""
    with bridge_remote(tmp_path, extra=extra) as (remote, conf):
        start_broker("--config", str(conf), anonymous=False)
        sock, _ = remote.accept()
        with sock:
            sock.settimeout(10)
            return sock.recv(1024)


def test_a_bridge_connects_as_hostname_dot_connection_name_by_default(start_broker, tmp_path):
    [connect] = StreamDecoder().feed(bridge_connect(start_broker, tmp_path))
    assert isinstance(connect, Connect)
    assert connect.client_id == f"{socket.gethostname()}.edge"


def test_a_311_bridge_sets_mosquittos_bridge_bit_unless_try_private_is_off(start_broker, tmp_path):
    assert bridge_connect(start_broker, tmp_path)[8] == 0x84
    assert bridge_connect(start_broker, tmp_path, "try_private false\n")[8] == 0x04


def test_an_mqtt5_bridge_connect_carries_only_the_receive_maximum_as_mosquittos(start_broker, tmp_path):
    data = bridge_connect(start_broker, tmp_path, "bridge_protocol_version mqttv50\n")
    # Level 5, clean start 0, keep alive 60, properties: receive maximum 20.
    assert data[8:15] == b"\x05\x00\x00\x3c\x03\x21\x00" and data[15] == 20


def test_the_broker_stops_while_its_bridge_remote_hangs_up(start_broker, tmp_path):
    # The remote closing in the same moment as SIGTERM arrives once made the bridge swallow
    # its cancellation and go on reconnecting: the broker never exited.
    with bridge_remote(tmp_path, topics="topic a/# both 1\n") as (remote, conf):
        for _ in range(5):
            broker = start_broker("--config", str(conf), anonymous=False)
            sock, _ = remote.accept()
            sock.settimeout(10)
            sock.recv(1024)  # CONNECT
            sock.sendall(b"\x20\x02\x00\x00")
            sock.recv(1024)  # SUBSCRIBE
            sock.close()
            assert broker.stop(timeout=10) == 0


def test_a_listener_without_an_address_listens_on_ipv4_and_ipv6(start_broker, tmp_path, raw_factory):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp_path / "any.conf"
    conf.write_text(f"listener {port}\nallow_anonymous true\n")
    broker = start_broker("--config", str(conf), anonymous=False)
    # start_broker returns at the first "listening" line; the second socket's may follow it.
    deadline = time.monotonic() + 10
    while not any(f"listening on mqtt://[::]:{port}" in line for line in broker.lines):
        assert time.monotonic() < deadline, broker.lines
        time.sleep(0.02)
    for host in ("127.0.0.1", "::1"):
        client = raw_factory(port, 4, host=host)
        assert client.connect(f"via-{host}").reason_code == 0


def test_an_outgoing_bridge_topic_counts_as_a_subscriber_in_the_puback(start_broker, tmp_path, raw_factory):
    # Mosquitto's bridge is a subscription; Roost's listens through a hook, which must still
    # keep an MQTT 5 PUBACK from saying 0x10 "no matching subscribers".
    with bridge_remote(tmp_path) as (_remote, conf):
        broker = start_broker("--config", str(conf), anonymous=False)
        client = raw_factory(broker.port, 5)
        assert client.connect("publisher").reason_code == 0
        client.send(Publish("a/bridged", b"x", 1, packet_id=1))
        bridged = client.receive()
        client.send(Publish("b/local", b"x", 1, packet_id=2))
        unmatched = client.receive()
    assert (bridged.packet_id, bridged.reason_code) == (1, 0)
    assert (unmatched.packet_id, unmatched.reason_code) == (2, 0x10)


def test_restart_timeout_waits_a_constant_or_backs_off_with_jitter_between_base_and_cap():
    loop = asyncio.new_event_loop()
    broker = Broker(BrokerConfig(sys_interval=0), loop)
    loop.close()
    constant = Bridge(broker, BridgeSettings("c", restart_timeout=(7.0, 7.0)))
    assert [constant._next_delay() for _ in range(5)] == [7.0] * 5
    backoff = Bridge(broker, BridgeSettings("b"))
    waits = [backoff._next_delay() for _ in range(50)]
    assert waits[0] == 5.0 and all(5.0 <= w <= 30.0 for w in waits)
    assert max(waits) > 15.0  # it grows: three times the last wait bounds each draw
    for earlier, later in zip(waits, waits[1:], strict=False):
        assert later <= max(5.0, earlier * 3)


@contextlib.contextmanager
def linked_bridge(start_broker, tmp_path) -> Iterator[socket.socket]:
    """A bridge's remote past CONNECT, CONNACK and the bridge's first UNSUBSCRIBE."""
    with bridge_remote(tmp_path) as (remote, conf):
        start_broker("--config", str(conf), anonymous=False)
        sock, _ = remote.accept()
        with sock:
            sock.settimeout(10)
            sock.recv(1024)  # CONNECT
            sock.sendall(b"\x20\x02\x00\x00")  # CONNACK
            assert sock.recv(1024).startswith(b"\xa2")  # UNSUBSCRIBE a/# (an out-only topic)
            yield sock


def test_a_bridge_answers_a_pingreq_from_its_remote(start_broker, tmp_path):
    # MQTT gives PINGREQ to clients only, but Mosquitto's bridge answers one from the remote
    # (its own test suite pings through bridges); closing the link over it lost the bridge.
    with linked_bridge(start_broker, tmp_path) as sock:
        sock.sendall(b"\xc0\x00")
        assert sock.recv(16) == b"\xd0\x00"


def test_a_bridge_resets_the_link_when_its_remote_breaks_the_protocol(start_broker, tmp_path):
    # A wildcard in a PUBLISH topic is malformed: the bridge drops the link with a TCP reset,
    # so the remote's next packet fails at once, as with Mosquitto (06-bridge-remap-receive-wildcard).
    with linked_bridge(start_broker, tmp_path) as sock:
        sock.sendall(bytes.fromhex("320c00062b2b2b2b2b2b00040033"))  # QoS 1 to "++++++"
        with pytest.raises(ConnectionResetError):
            sock.sendall(b"\xc0\x00")
            assert sock.recv(16) == b"", "the bridge answered a broken link"


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_huge_packets_before_connect_cost_the_broker_no_memory(start_broker):
    # Mosquitto's 01-bad-initial-packets sends each packet type but CONNECT as a first packet
    # claiming 256 MB, then 100 MB of it. Each is refused at its first bytes, so nothing grows.
    broker = start_broker()
    assert broker.proc is not None
    before = _rss_kib(broker.proc.pid)
    socks = []
    for first in range(0x20, 0x100, 0x10):
        sock = socket.create_connection(("127.0.0.1", broker.port))
        socks.append(sock)
        with contextlib.suppress(ConnectionError):
            sock.sendall(bytes((first,)) + b"\x80\x80\x80t" + b"\x01" * 100_000_000)
    grown = _rss_kib(broker.proc.pid) - before
    for sock in socks:
        sock.close()
    assert grown < 8 * 1024, f"the broker grew by {grown} KiB"
    assert broker.alive
