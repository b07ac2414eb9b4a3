"""Large but legal packets: forwarded intact when inside the advertised Maximum Packet Size,
refused with 0x95 above it — never 0x97 for a limit the client was not told."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.mqtt import (
    Connack,
    Disconnect,
    Properties,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Subscription,
    encode,
)
from tests.broker.conftest import BrokerProcess, RawClient

MAX_PACKET = 200_000
PAIRS = [(f"k{i:04d}", f"{i % 100:02d}") for i in range(10_000)]  # 12 bytes a pair on the wire


def _broker(start_broker: Callable[..., BrokerProcess]) -> BrokerProcess:
    return start_broker("--max-packet-size", str(MAX_PACKET))


def _connected(raw_factory: Callable[..., RawClient], broker: BrokerProcess, client_id: str) -> tuple[RawClient, Any]:
    client = raw_factory(broker.port)
    connack = client.connect(client_id)
    assert isinstance(connack, Connack) and connack.reason_code == 0
    return client, connack


def test_a_120_kb_publish_with_10000_user_properties_is_forwarded_intact(
        start_broker: Callable[..., BrokerProcess], raw_factory: Callable[..., RawClient]) -> None:
    broker = _broker(start_broker)
    subscriber, connack = _connected(raw_factory, broker, "reader")
    assert connack.properties.maximum_packet_size == MAX_PACKET  # the limit the client is told
    subscriber.send(Subscribe(1, [Subscription("big/#", qos=1)]))
    assert isinstance(subscriber.receive(), Suback)
    publisher, _ = _connected(raw_factory, broker, "writer")
    packet = Publish("big/one", b"x" * 1000, qos=1, packet_id=9, properties=Properties(user_properties=PAIRS))
    assert 120_000 <= len(encode(packet, 5)) <= MAX_PACKET  # inside every advertised limit
    publisher.send(packet)
    ack = publisher.receive()
    assert isinstance(ack, Puback) and (ack.packet_id, ack.reason_code) == (9, 0)
    delivered = subscriber.receive(10)
    assert isinstance(delivered, Publish)
    assert (delivered.topic, delivered.payload) == ("big/one", b"x" * 1000)
    assert delivered.properties.user_properties == PAIRS  # every pair, in order [MQTT-3.3.2-18]


def test_a_publish_above_the_advertised_maximum_packet_size_is_refused_with_0x95(
        start_broker: Callable[..., BrokerProcess], raw_factory: Callable[..., RawClient]) -> None:
    broker = _broker(start_broker)
    publisher, _ = _connected(raw_factory, broker, "writer")
    publisher.send(Publish("big/one", b"x" * (MAX_PACKET + 1), qos=1, packet_id=9))
    goodbye = publisher.receive()
    assert isinstance(goodbye, Disconnect) and goodbye.reason_code == 0x95
