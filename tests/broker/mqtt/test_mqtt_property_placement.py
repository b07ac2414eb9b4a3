"""Every MQTT 5 property on every packet type: where the specification lists it, it
decodes; anywhere else the packet is malformed (section 2.2.2.2). Duplicating a property
that may appear only once is a protocol error."""

from __future__ import annotations

import pytest

from broker.mqtt import PROPERTY_IDS, PacketType, ProtocolError, ReasonCode, allowed_properties
from tests.broker.mqtt.mqtt_helpers import connected_decoder, fresh_decoder

# A well-formed value for each property, by attribute name.
VALUES = {
    "payload_format_indicator": "00", "message_expiry_interval": "00000001",
    "content_type": "000161", "response_topic": "000161", "correlation_data": "0000",
    "subscription_identifiers": "01", "session_expiry_interval": "00000001",
    "assigned_client_identifier": "000161", "server_keep_alive": "0001",
    "authentication_method": "000161", "authentication_data": "0000",
    "request_problem_information": "00", "will_delay_interval": "00000001",
    "request_response_information": "00", "response_information": "000161",
    "server_reference": "000161", "reason_string": "000161", "receive_maximum": "0001",
    "topic_alias_maximum": "0001", "topic_alias": "0001", "maximum_qos": "00",
    "retain_available": "00", "user_properties": "000161000162",
    "maximum_packet_size": "00000001", "wildcard_subscription_available": "00",
    "subscription_identifier_available": "00", "shared_subscription_available": "00",
}
assert set(VALUES) == set(PROPERTY_IDS)

# (first byte, body before the properties, body after them, decoded by a server?, fresh?)
CONNECT_HEAD = "00044d515454 05 02 003c"
SHAPES = {
    PacketType.CONNECT: (0x10, CONNECT_HEAD, "000163", True, True),
    PacketType.WILL: (0x10, "00044d515454 05 06 003c 00 000163", "000177 0000", True, True),
    PacketType.CONNACK: (0x20, "0000", "", False, True),
    PacketType.PUBLISH: (0x30, "000161", "", False, False),
    PacketType.PUBACK: (0x40, "0001 00", "", True, False),
    PacketType.PUBREC: (0x50, "0001 00", "", True, False),
    PacketType.PUBREL: (0x62, "0001 00", "", True, False),
    PacketType.PUBCOMP: (0x70, "0001 00", "", True, False),
    PacketType.SUBSCRIBE: (0x82, "0001", "000161 00", True, False),
    PacketType.SUBACK: (0x90, "0001", "00", False, False),
    PacketType.UNSUBSCRIBE: (0xA2, "0001", "000161", True, False),
    PacketType.UNSUBACK: (0xB0, "0001", "00", False, False),
    PacketType.DISCONNECT: (0xE0, "00", "", True, False),
    PacketType.AUTH: (0xF0, "18", "", True, False),
}


def wire(packet_type: PacketType, properties_hex: str) -> tuple[bytes, bool, bool]:
    first, head, tail, server_side, fresh = SHAPES[packet_type]
    section = bytes.fromhex(properties_hex)
    body = bytes.fromhex(head) + bytes((len(section),)) + section + bytes.fromhex(tail)
    return bytes((first, len(body))) + body, server_side, fresh


def decode(packet_type: PacketType, properties_hex: str) -> None:
    data, server_side, fresh = wire(packet_type, properties_hex)
    decoder = fresh_decoder(5, server_side) if fresh else connected_decoder(5, server_side)
    decoder.feed(data)


def entry(name: str) -> str:
    return f"{PROPERTY_IDS[name]:02x}{VALUES[name]}"


PLACEMENTS = [
    pytest.param(packet_type, name, name in allowed_properties(packet_type),
                 id=f"{name} on {packet_type.name}")
    for packet_type in SHAPES
    for name in sorted(PROPERTY_IDS)
]


@pytest.mark.parametrize(("packet_type", "name", "allowed"), PLACEMENTS)
def test_a_property_is_accepted_exactly_where_the_specification_lists_it(
    packet_type: PacketType, name: str, allowed: bool
) -> None:
    if allowed:
        # AUTH, and authentication data anywhere, need an authentication method beside them.
        needs_method = packet_type == PacketType.AUTH or name == "authentication_data"
        company = entry("authentication_method") if needs_method else ""
        decode(packet_type, (company if name != "authentication_method" else "") + entry(name))
    else:
        with pytest.raises(ProtocolError) as caught:
            decode(packet_type, entry(name))
        assert caught.value.reason_code == ReasonCode.MALFORMED_PACKET


SINGLE = [
    pytest.param(packet_type, name, id=f"{name} twice on {packet_type.name}")
    for packet_type in SHAPES
    for name in sorted(allowed_properties(packet_type))
    if name != "user_properties"
    and not (name == "subscription_identifiers" and packet_type == PacketType.PUBLISH)
]


@pytest.mark.parametrize(("packet_type", "name"), SINGLE)
def test_a_property_that_may_appear_once_is_refused_twice(
    packet_type: PacketType, name: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(packet_type, entry(name) * 2)
    # Mosquitto reports every fault of a SUBSCRIBE or UNSUBSCRIBE as malformed.
    subscription = packet_type in (PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE)
    assert caught.value.reason_code == (
        ReasonCode.MALFORMED_PACKET if subscription else ReasonCode.PROTOCOL_ERROR)


@pytest.mark.parametrize("packet_type", list(SHAPES))
def test_user_properties_may_repeat_on_every_packet_type(packet_type: PacketType) -> None:
    extra = entry("authentication_method") if packet_type == PacketType.AUTH else ""
    decode(packet_type, extra + entry("user_properties") * 3)
