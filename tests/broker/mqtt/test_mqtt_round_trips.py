"""Property-based round trips: decode(encode(packet)) == packet, for every packet type in
MQTT 3.1.1 and 5.0 (and CONNECT in 3.1), with every property a packet may carry."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.mqtt import (
    Connack,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    Properties,
    Puback,
    Pubcomp,
    Pubrec,
    Pubrel,
    StreamDecoder,
    encode,
    encode_properties,
)
from broker.mqtt.properties import decode_properties
from broker.mqtt.wire import encode_varint
from tests.broker.mqtt import mqtt_strategies as s
from tests.broker.mqtt.mqtt_helpers import connected_decoder, decoder_for

ROUND_TRIPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (name, strategy factory taking a level, decoded by the server side?)
KINDS: list[tuple[str, Callable[[int], st.SearchStrategy[Packet]], bool]] = [
    ("connect", s.connects, True),
    ("connack", s.connacks, False),
    ("publish from a client", s.publishes, True),
    ("publish from a server", lambda v: s.publishes(v, from_server=True), False),
    ("puback", lambda v: s.pub_responses(Puback, v), True),
    ("pubrec", lambda v: s.pub_responses(Pubrec, v), False),
    ("pubrel", lambda v: s.pub_responses(Pubrel, v), True),
    ("pubcomp", lambda v: s.pub_responses(Pubcomp, v), False),
    ("subscribe", s.subscribes, True),
    ("suback", s.subacks, False),
    ("unsubscribe", s.unsubscribes, True),
    ("unsuback", s.unsubacks, False),
    ("pingreq", lambda v: st.just(Pingreq()), True),
    ("pingresp", lambda v: st.just(Pingresp()), False),
    ("disconnect from a client", s.disconnects, True),
    ("disconnect from a server", lambda v: s.disconnects(v, from_server=True), False),
]
PARAMS = [
    pytest.param(factory, level, server_side, id=f"{name} v{level}")
    for name, factory, server_side in KINDS
    for level in (4, 5)
]
PARAMS.append(pytest.param(s.connects, 3, True, id="connect v3 (MQIsdp)"))
PARAMS.append(pytest.param(lambda v: s.auths(), 5, True, id="auth v5 from a client"))
PARAMS.append(pytest.param(lambda v: s.auths(), 5, False, id="auth v5 from a server"))


@pytest.mark.parametrize(("factory", "level", "server_side"), PARAMS)
@ROUND_TRIPS
@given(data=st.data())
def test_it_decodes_what_it_encodes_for_every_packet_type(
    factory: Callable[[int], st.SearchStrategy[Packet]],
    level: int,
    server_side: bool,
    data: st.DataObject,
) -> None:
    packet = data.draw(factory(level))
    wire = encode(packet, level)
    decoded = decoder_for(packet, level, server_side).feed(wire)
    assert decoded == [packet]


@ROUND_TRIPS
@given(packets=st.lists(s.packets_from_client(5), min_size=1, max_size=8), data=st.data())
def test_it_decodes_a_stream_of_packets_whatever_the_chunking(
    packets: list[Packet], data: st.DataObject
) -> None:
    wire = b"".join(encode(p, 5) for p in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    decoder = connected_decoder(5)
    decoded: list[Packet] = []
    previous = 0
    for cut in [*cuts, len(wire)]:
        decoded += decoder.feed(wire[previous:cut])
        previous = cut
    assert decoded == packets
    assert decoder.buffered == 0


@ROUND_TRIPS
@given(packets=st.lists(s.packets_from_server(4), min_size=1, max_size=8))
def test_a_client_side_decoder_reads_a_3_1_1_server_stream_in_one_feed(
    packets: list[Packet],
) -> None:
    decoder = StreamDecoder(server_side=False, protocol_level=4)
    wire = encode(Connack(), 4) + b"".join(encode(p, 4) for p in packets)
    assert decoder.feed(wire) == [Connack(), *packets]


# One encoded PUBLISH property each; user properties and subscription identifiers repeat.
_PUBLISH_PROPERTIES = [
    b"\x01\x01", b"\x02\x00\x00\x00\x3c", b"\x03\x00\x04text", b"\x08\x00\x05reply",
    b"\x09\x00\x02\x01\x02", b"\x0b\x07", b"\x0b\x09", b"\x23\x00\x02",
    b"\x26\x00\x02k1\x00\x01a", b"\x26\x00\x02k2\x00\x01b", b"\x26\x00\x02k3\x00\x01c",
]


@settings(max_examples=200, deadline=None)
@given(chosen=st.permutations(_PUBLISH_PROPERTIES).flatmap(
    lambda items: st.integers(1, len(items)).map(lambda n: items[:n])))
def test_properties_are_encoded_again_in_the_order_they_came(chosen: list[bytes]) -> None:
    body = b"".join(chosen)
    section = encode_varint(len(body)) + body
    props, end = decode_properties(section, 0, len(section), PacketType.PUBLISH)
    assert end == len(section) and props is not None
    assert encode_properties(props, PacketType.PUBLISH) == section
    in_identifier_order = [item[0] for item in chosen] == sorted(item[0] for item in chosen)
    assert (props.order is None) == in_identifier_order  # nothing kept when nothing is to keep


def test_properties_set_after_decoding_follow_those_that_came_and_removed_ones_are_left_out() -> None:
    props = Properties(response_topic="r", payload_format_indicator=1, user_properties=[("k", "v")],
                       order=(0x26, 0x08, 0x18, 0x01))
    props.content_type = "c"
    props.user_properties = [("k", "v"), ("k2", "w")]
    assert encode_properties(props, PacketType.PUBLISH) == (
        b"\x19" b"\x26\x00\x01k\x00\x01v" b"\x08\x00\x01r" b"\x01\x01" b"\x03\x00\x01c" b"\x26\x00\x02k2\x00\x01w")
