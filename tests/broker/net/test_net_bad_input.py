"""Bad input closes only the connection that sent it; the broker keeps serving."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from broker.mqtt import Connack, Connect, Disconnect, Publish


def still_serving(port: int, raw_factory) -> bool:
    probe = raw_factory(port)
    return probe.connect("probe").reason_code == 0


def test_a_malformed_packet_from_an_mqtt5_client_gets_disconnect_0x81(start_broker, raw_factory):
    broker = start_broker()
    bad = raw_factory(broker.port)
    assert bad.connect("bad").reason_code == 0
    bad.send(b"\x30\x02\x00\x05")  # topic length runs past the packet
    packet = bad.receive()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x81
    assert bad.closed()
    assert still_serving(broker.port, raw_factory)


def test_a_malformed_packet_from_a_311_client_closes_the_connection(shared_broker, raw_factory):
    bad = raw_factory(shared_broker.port, level=4)
    assert bad.connect("bad311").reason_code == 0
    bad.send(b"\x32\x03\x00\x01a")  # QoS 1 without a packet identifier
    assert bad.closed()
    assert still_serving(shared_broker.port, raw_factory)


def test_a_malformed_connect_from_an_mqtt5_client_gets_a_connack_with_the_reason(shared_broker, raw_factory):
    bad = raw_factory(shared_broker.port)
    # CONNECT with the reserved flag bit set [MQTT-3.1.2-3].
    bad.send(b"\x10\x0e\x00\x04MQTT\x05\x03\x00\x3c\x00\x00\x01a")
    packet = bad.receive()
    assert isinstance(packet, Connack) and packet.reason_code == 0x81
    assert bad.closed()


def test_an_unsupported_protocol_level_gets_connack_1(shared_broker, raw_factory):
    """[MQTT-3.1.2-2]"""
    bad = raw_factory(shared_broker.port, level=4)
    bad.send(b"\x10\x0d\x00\x04MQTT\x09\x02\x00\x3c\x00\x01a")
    packet = bad.receive()
    assert isinstance(packet, Connack) and packet.reason_code == 1
    assert bad.closed()


def test_a_first_packet_other_than_connect_closes_the_connection(shared_broker, raw_factory):
    """[MQTT-3.1.0-1]"""
    bad = raw_factory(shared_broker.port, level=4)
    bad.send(b"\xc0\x00")
    assert bad.closed()


def test_a_second_connect_closes_the_connection(shared_broker, raw_factory):
    """[MQTT-3.1.0-2]"""
    bad = raw_factory(shared_broker.port)
    assert bad.connect("twice").reason_code == 0
    bad.send(Connect(protocol_level=5, client_id="twice"))
    packet = bad.receive()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x82
    assert bad.closed()


def test_a_packet_above_the_maximum_size_gets_disconnect_0x95(start_broker, raw_factory):
    broker = start_broker("--max-packet-size", "1024")
    big = raw_factory(broker.port)
    connack = big.connect("big")
    assert connack.properties.maximum_packet_size == 1024
    big.send(Publish("x", b"a" * 2000))
    packet = big.receive()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x95
    assert still_serving(broker.port, raw_factory)


def test_a_connect_trickled_a_byte_at_a_time_is_dropped_after_the_connect_timeout(start_broker):
    broker = start_broker("--connect-timeout", "1")
    connect = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01a"
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        started = time.monotonic()
        closed = False
        for byte in connect[:-1]:
            try:
                sock.sendall(bytes((byte,)))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.25)
        if not closed:
            sock.settimeout(3)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(16) == b""
        assert time.monotonic() - started < 4.5


def test_a_half_open_socket_that_never_sends_connect_is_dropped(start_broker):
    broker = start_broker("--connect-timeout", "1")
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(16) == b""
        assert 0.8 < time.monotonic() - started < 3


@pytest.mark.parametrize("garbage", [b"\xff" * 64, b"\x10\xff\xff\xff\xff\x7f", b"\x00\x00"])
def test_garbage_never_stops_the_broker(shared_broker, raw_factory, garbage):
    bad = raw_factory(shared_broker.port, level=4)
    bad.send(garbage)
    assert bad.closed()
    assert still_serving(shared_broker.port, raw_factory)
