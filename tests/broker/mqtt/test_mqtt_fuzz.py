"""Fuzzing the decoder.

INVARIANT: whatever bytes a peer sends, in whatever chunks, `StreamDecoder.feed` either
returns a list of packets or raises `ProtocolError` (with a reason code MQTT defines) —
never any other exception. And whatever it returns re-encodes to bytes that decode to
the same packets.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.mqtt import (
    Connect,
    DecoderLimits,
    Packet,
    ProtocolError,
    ReasonCode,
    StreamDecoder,
    encode,
)
from tests.broker.mqtt import mqtt_strategies as s
from tests.broker.mqtt.mqtt_helpers import connected_decoder, decoder_for, fresh_decoder

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REASONS = {int(code) for code in ReasonCode}


TIGHT = DecoderLimits(max_properties=2, max_user_properties=1, max_user_property_bytes=4,
                      max_subscriptions=1, max_connect_size=40)


def _decoders(level: int) -> list[StreamDecoder]:
    return [
        fresh_decoder(level, True),
        fresh_decoder(level, False),
        connected_decoder(level, True),
        connected_decoder(level, False),
        connected_decoder(level, True, max_packet_size=48, limits=TIGHT),
    ]


def _check(decoder: StreamDecoder, chunks: list[bytes]) -> None:
    level = decoder.protocol_level
    packets: list[Packet] = []
    try:
        for chunk in chunks:
            packets += decoder.feed(chunk)
    except ProtocolError as error:
        assert error.reason_code in REASONS
        packets += error.packets
    level = decoder.protocol_level or level or 4
    for packet in packets:
        again = decoder_for(packet, level, decoder.server_side)
        assert again.feed(encode(packet, level)) == [packet]


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@FUZZ
@given(data=st.binary(max_size=200), level=st.sampled_from([3, 4, 5]),
       cuts=st.lists(st.integers(0, 200), max_size=4))
def test_random_bytes_either_parse_or_raise_protocol_error(
    data: bytes, level: int, cuts: list[int]
) -> None:
    for decoder in _decoders(level):
        _check(decoder, _chunked(data, cuts))


@st.composite
def mutated_streams(draw: st.DrawFn) -> tuple[int, bool, bytes]:
    level = draw(st.sampled_from([4, 5]))
    from_client = draw(st.booleans())
    source = s.packets_from_client(level) if from_client else s.packets_from_server(level)
    packets = draw(st.lists(source, min_size=1, max_size=3))
    data = bytearray(b"".join(encode(p, level) for p in packets))
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        if action == "flip":
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            data[index] = draw(st.integers(0, 255))
        elif action == "insert":
            data.insert(index, draw(st.integers(0, 255)))
        elif len(data) > 1:
            del data[index]
    return level, from_client, bytes(data)


@FUZZ
@given(case=mutated_streams(), cuts=st.lists(st.integers(0, 400), max_size=3))
def test_mutated_valid_packets_either_parse_or_raise_protocol_error(
    case: tuple[int, bool, bytes], cuts: list[int]
) -> None:
    level, from_client, data = case
    _check(connected_decoder(level, server_side=from_client), _chunked(data, cuts))


@FUZZ
@given(connect=st.sampled_from([3, 4, 5]).flatmap(s.connects), data=st.data())
def test_mutated_connect_packets_either_parse_or_raise_protocol_error(
    connect: Connect, data: st.DataObject
) -> None:
    wire = bytearray(encode(connect, connect.protocol_level))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] = data.draw(st.integers(0, 255))
    _check(StreamDecoder(), [bytes(wire)])
