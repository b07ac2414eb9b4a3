"""Protocol defects found with Mosquitto's broker tests (issue 15), over real sockets to a
standalone `python -m broker`."""

from __future__ import annotations

import contextlib
import socket

from broker.mqtt import Puback, Publish, Subscribe, Subscription, Will
from broker.mqtt.reason_codes import ReasonCode


def everything_until_closed(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh connection and return all the broker sends before closing."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                received += chunk
    return received


def test_a_first_packet_other_than_connect_is_answered_by_a_close_alone(shared_broker):
    """[MQTT-3.1.0-1]: no CONNACK, just the close."""
    assert everything_until_closed(shared_broker.port, b"\xc0\x00") == b""
    assert everything_until_closed(shared_broker.port, b"\x82\x06\x00\x01\x00\x01a\x00") == b""


def test_an_unsupported_protocol_level_is_still_answered_with_connack_1(shared_broker):
    connect = b"\x10\x0d\x00\x04MQTT\x09\x02\x00\x3c\x00\x01a"
    assert everything_until_closed(shared_broker.port, connect) == b"\x20\x02\x00\x01"


def test_an_mqtt5_publish_nobody_subscribed_to_is_acknowledged_with_0x10(shared_broker, raw_factory, unique):
    pub = raw_factory(shared_broker.port)
    assert pub.connect(unique[-20:]).reason_code == 0
    pub.send(Publish(unique + "/nobody", b"x", 1, packet_id=4))
    assert pub.receive() == Puback(4, ReasonCode.NO_MATCHING_SUBSCRIBERS)


def test_a_device_that_takes_over_its_own_persistent_session_leaves_no_will(
    start_broker, raw_factory
):
    broker = start_broker()
    watcher = raw_factory(broker.port, level=4)
    assert watcher.connect("watcher").reason_code == 0
    watcher.send(Subscribe(1, [Subscription("will/#", 0)]))
    assert watcher.receive().packet_id == 1
    first = raw_factory(broker.port, level=4)
    assert first.connect("device", clean_start=False,
                         will=Will("will/device", b"offline")).reason_code == 0
    second = raw_factory(broker.port, level=4)
    assert second.connect("device", clean_start=False).session_present is True
    assert first.closed()
    second.send(Publish("will/check", b"still here", 0))
    # The first thing the watcher gets is the check, not a will.
    assert watcher.receive().payload == b"still here"
