"""The broker's PUBLISH fast path: encode once, patch the packet id per subscriber."""

from __future__ import annotations

import pytest

from broker.mqtt import (
    PacketType,
    Properties,
    Publish,
    encode,
    encode_properties,
    encode_publish,
    publish_packet_id_offset,
)
from tests.broker.mqtt.mqtt_helpers import connected_decoder


@pytest.mark.parametrize("level", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("payload", [b"", b"x" * 10, b"y" * 70_000])
def test_encode_publish_matches_the_general_encoder(level: int, qos: int, payload: bytes) -> None:
    packet = Publish("a/b", payload, qos, True, qos > 0, 7 if qos else None)
    fast = encode_publish(b"a/b", payload, qos, True, qos > 0, 7, b"", level)
    assert fast == encode(packet, level)


def test_encode_publish_takes_already_encoded_properties() -> None:
    props = Properties(message_expiry_interval=30, user_properties=[("k", "v")])
    section = encode_properties(props, PacketType.PUBLISH)
    fast = encode_publish(b"t", b"p", 1, False, False, 9, section, 5)
    assert connected_decoder(5).feed(fast) == [Publish("t", b"p", 1, False, False, 9, props)]


def test_encode_publish_writes_an_empty_property_section_for_mqtt_5() -> None:
    assert encode_publish(b"t", b"", 0, False, False, 0, b"", 5) == bytes.fromhex("3004000174 00")


@pytest.mark.parametrize("level", [4, 5])
@pytest.mark.parametrize(("topic", "payload"), [("t", b"p"), ("long/" * 40, b"z" * 20_000)])
def test_the_packet_id_can_be_patched_in_place_for_each_subscriber(
    level: int, topic: str, payload: bytes
) -> None:
    encoded = bytearray(encode_publish(topic.encode(), payload, 1, False, False, 1, b"", level))
    offset = publish_packet_id_offset(bytes(encoded))
    for packet_id in (2, 0x1234, 0xFFFF):
        encoded[offset : offset + 2] = packet_id.to_bytes(2, "big")
        decoded = connected_decoder(level).feed(bytes(encoded))
        assert decoded == [Publish(topic, payload, 1, packet_id=packet_id)]


def test_a_qos_0_publish_has_no_packet_id_offset() -> None:
    with pytest.raises(ValueError, match="QoS 0"):
        publish_packet_id_offset(encode_publish(b"t", b"", 0, False, False, 0, b"", 4))
