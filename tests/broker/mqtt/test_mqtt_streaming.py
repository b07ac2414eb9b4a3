"""Stream behaviour: truncated input waits for more, many packets decode in one feed, a
packet split across many feeds decodes, and the buffer stays bounded."""

from __future__ import annotations

import pytest

from broker.mqtt import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Properties,
    ProtocolError,
    Puback,
    Publish,
    ReasonCode,
    StreamDecoder,
    Subscribe,
    Subscription,
    Will,
    encode,
)
from broker.mqtt.properties import DecoderLimits
from tests.broker.mqtt.mqtt_helpers import connected_decoder, decoder_for
from tests.broker.mqtt.test_mqtt_byte_exact import CASES

LONG_PUBLISH = Publish("sensors/t", bytes(range(256)) * 3, 1, packet_id=513,
                       properties=Properties(user_properties=[("a", "b")] * 5))
LONG_CONNECT = Connect(5, False, 30, "dev-1", "user", b"secret" * 40,
                       Will("bye/dev-1", b"gone" * 50, 2, True, Properties(will_delay_interval=3)),
                       Properties(session_expiry_interval=600, receive_maximum=10))
PREFIX_CASES = [(level, side, packet, bytes.fromhex(wire)) for _, level, side, packet, wire in CASES]
PREFIX_CASES += [(5, True, LONG_PUBLISH, encode(LONG_PUBLISH, 5)),
                 (5, True, LONG_CONNECT, encode(LONG_CONNECT, 5))]


@pytest.mark.parametrize(("level", "server_side", "packet", "wire"), PREFIX_CASES)
def test_every_truncated_prefix_of_a_valid_packet_needs_more_data(
    level: int, server_side: bool, packet: object, wire: bytes
) -> None:
    for cut in range(len(wire)):
        decoder = decoder_for(type(packet), level, server_side)  # type: ignore[arg-type]
        assert decoder.feed(wire[:cut]) == []
        assert decoder.feed(wire[cut:]) == [packet]


@pytest.mark.parametrize(("level", "server_side", "packet", "wire"), PREFIX_CASES)
def test_a_packet_fed_one_byte_at_a_time_decodes_on_its_last_byte(
    level: int, server_side: bool, packet: object, wire: bytes
) -> None:
    decoder = decoder_for(type(packet), level, server_side)  # type: ignore[arg-type]
    for index in range(len(wire) - 1):
        assert decoder.feed(wire[index : index + 1]) == []
    assert decoder.feed(wire[-1:]) == [packet]


def test_it_decodes_many_packets_from_one_buffer_in_one_feed() -> None:
    connect = Connect(5, True, 60, "dev")
    packets = [
        connect,
        Subscribe(1, [Subscription("a/#", 1)]),
        *[Publish(f"a/{i}", b"x" * i, 1, packet_id=i + 1) for i in range(200)],
        Puback(7),
        Pingreq(),
        Disconnect(),
    ]
    decoder = StreamDecoder()
    assert decoder.feed(b"".join(encode(p, 5) for p in packets)) == packets
    assert decoder.protocol_level == 5


def test_it_decodes_packets_that_follow_connect_by_the_version_connect_announced() -> None:
    publish = Publish("t", b"p", 0)
    decoder = StreamDecoder()
    wire = encode(Connect(4, True, 60, "dev"), 4) + encode(publish, 4)
    assert decoder.feed(wire)[1] == publish
    assert decoder.protocol_level == 4


def test_it_keeps_a_partial_tail_and_completes_it_on_the_next_feed() -> None:
    first, second = Publish("a", b"1", 0), Publish("b", b"2" * 300, 0)
    wire = encode(first, 4) + encode(second, 4)
    decoder = connected_decoder(4)
    assert decoder.feed(wire[:-10]) == [first]
    assert decoder.buffered == len(encode(second, 4)) - 10
    assert decoder.feed(wire[-10:]) == [second]
    assert decoder.buffered == 0


def test_it_refuses_an_oversized_packet_from_its_fixed_header_alone() -> None:
    decoder = connected_decoder(5, max_packet_size=1024)
    header = bytes.fromhex("30ff0f")  # remaining length 2047, body not sent
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(header)
    assert caught.value.reason_code == ReasonCode.PACKET_TOO_LARGE
    assert decoder.buffered == 0


def test_it_counts_the_fixed_header_in_the_maximum_packet_size() -> None:
    publish = Publish("t", b"x" * 10, 0)
    wire = encode(publish, 4)
    decoder = connected_decoder(4)
    decoder.max_packet_size = len(wire)
    assert decoder.feed(wire) == [publish]
    decoder.max_packet_size = len(wire) - 1
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(wire)
    assert caught.value.reason_code == ReasonCode.PACKET_TOO_LARGE


def test_it_holds_a_connecting_client_to_a_smaller_first_packet() -> None:
    decoder = StreamDecoder(limits=DecoderLimits(max_connect_size=100))
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(bytes.fromhex("10ff01"))  # a 255-byte CONNECT announced
    assert caught.value.reason_code == ReasonCode.PACKET_TOO_LARGE


def test_it_hands_back_the_good_packets_that_came_before_a_bad_one() -> None:
    good = Publish("ok", b"", 0)
    decoder = connected_decoder(4)
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(encode(good, 4) + bytes.fromhex("3003000123"))
    assert caught.value.packets == [good]


def test_it_stays_failed_after_a_protocol_error() -> None:
    decoder = connected_decoder(4)
    with pytest.raises(ProtocolError):
        decoder.feed(bytes.fromhex("c00100"))
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(encode(Pingreq(), 4))
    assert caught.value.reason_code == ReasonCode.MALFORMED_PACKET


def test_a_client_side_decoder_becomes_connected_on_connack() -> None:
    decoder = StreamDecoder(server_side=False, protocol_level=5)
    assert not decoder.connected
    assert decoder.feed(encode(Connack(True, 0), 5)) == [Connack(True, 0)]
    assert decoder.connected


def test_a_client_side_decoder_needs_a_protocol_level() -> None:
    with pytest.raises(ValueError, match="protocol_level"):
        StreamDecoder(server_side=False)
