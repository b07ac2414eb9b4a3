"""Decoder defects found with Mosquitto's broker tests (issue 15): which reason code a
bad SUBSCRIBE/UNSUBSCRIBE gets, and MQTT 3.1's DUP flag on PUBREL."""

from __future__ import annotations

import struct

import pytest

from broker.mqtt import ProtocolError, Pubrel, ReasonCode, StreamDecoder, Subscribe, Unsubscribe
from tests.broker.mqtt.mqtt_helpers import connected_decoder


def refusal(decoder: StreamDecoder, wire: bytes) -> int:
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(wire)
    return caught.value.reason_code


def subscribe(packet_id: int, options: int, properties: bytes = b"") -> bytes:
    body = struct.pack("!H", packet_id) + bytes([len(properties)]) + properties
    body += b"\x00\x01a" + bytes([options])
    return bytes([0x82, len(body)]) + body


def unsubscribe(packet_id: int, properties: bytes = b"") -> bytes:
    body = struct.pack("!H", packet_id) + bytes([len(properties)]) + properties + b"\x00\x01a"
    return bytes([0xA2, len(body)]) + body


# ---- packet identifier 0 ----------------------------------------------------------------


@pytest.mark.parametrize("level", [4, 5])
def test_a_subscribe_with_packet_identifier_0_is_malformed(level):
    wire = subscribe(0, 1) if level == 5 else b"\x82\x06\x00\x00\x00\x01a\x01"
    assert refusal(connected_decoder(level), wire) == ReasonCode.MALFORMED_PACKET


@pytest.mark.parametrize("level", [4, 5])
def test_an_unsubscribe_with_packet_identifier_0_is_malformed(level):
    wire = unsubscribe(0) if level == 5 else b"\xa2\x05\x00\x00\x00\x01a"
    assert refusal(connected_decoder(level), wire) == ReasonCode.MALFORMED_PACKET


def test_a_subscribe_with_packet_identifier_1_is_decoded():
    [packet] = connected_decoder(5).feed(subscribe(1, 1))
    assert isinstance(packet, Subscribe) and packet.packet_id == 1


def test_an_unsubscribe_with_packet_identifier_1_is_decoded():
    [packet] = connected_decoder(5).feed(unsubscribe(1))
    assert isinstance(packet, Unsubscribe) and packet.topic_filters == ["a"]


# ---- every fault of a SUBSCRIBE/UNSUBSCRIBE is 0x81, as Mosquitto reports it -------------
# The specification calls some of these Protocol Errors; the client is closed either way, and
# Mosquitto's clients and tests expect 0x81.


@pytest.mark.parametrize(("wire", "fault"), [
    (subscribe(1, 3), "maximum QoS 3 (section 3.8.3.1)"),
    (subscribe(1, 0x30), "retain handling 3 (section 3.8.3.1)"),
    (subscribe(1, 1, b"\x0b\x00"), "subscription identifier 0 (section 3.8.2.1.2)"),
    (subscribe(1, 1, b"\x0b\x01\x0b\x02"), "two subscription identifiers"),
    (b"\x82\x03\x00\x01\x00", "no payload (section 3.8.3)"),
    (b"\xa2\x03\x00\x01\x00", "UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]"),
])
def test_what_the_specification_calls_a_protocol_error_in_a_subscribe_is_malformed(wire, fault):
    assert refusal(connected_decoder(5), wire) == ReasonCode.MALFORMED_PACKET, fault


def test_no_local_on_a_shared_subscription_stays_a_protocol_error_as_in_mosquitto():
    wire = b"\x82\x10\x00\x01\x00\x00\x0a$share/g/a\x04"
    assert refusal(connected_decoder(5), wire) == ReasonCode.PROTOCOL_ERROR


def test_reserved_subscription_option_bits_are_malformed():
    """[MQTT-3.8.3-5]"""
    assert refusal(connected_decoder(5), subscribe(1, 0xC1)) == ReasonCode.MALFORMED_PACKET


def test_a_property_not_allowed_in_subscribe_is_malformed():
    """Section 2.2.2.2: an identifier not valid for its packet type is a Malformed Packet."""
    session_expiry = b"\x11\x00\x00\x00\x00"
    assert refusal(connected_decoder(5), subscribe(1, 1, session_expiry)) == ReasonCode.MALFORMED_PACKET


# ---- MQTT 3.1: PUBREL, SUBSCRIBE and UNSUBSCRIBE may carry DUP ---------------------------


def test_an_mqtt31_pubrel_with_dup_is_decoded():
    assert connected_decoder(3).feed(b"\x6a\x02\x00\x05") == [Pubrel(5)]


def test_an_mqtt31_subscribe_with_dup_is_decoded():
    [packet] = connected_decoder(3).feed(b"\x8a\x06\x00\x02\x00\x01a\x01")
    assert isinstance(packet, Subscribe) and packet.packet_id == 2


@pytest.mark.parametrize("level", [4, 5])
def test_a_pubrel_with_dup_is_malformed_after_mqtt31(level):
    """[MQTT-3.6.1-1]: the PUBREL flags are 0010."""
    assert refusal(connected_decoder(level), b"\x6a\x02\x00\x05") == ReasonCode.MALFORMED_PACKET


def test_an_mqtt31_pubrel_with_other_flags_is_still_malformed():
    assert refusal(connected_decoder(3), b"\x6e\x02\x00\x05") == ReasonCode.MALFORMED_PACKET
