"""Table-driven, byte-exact encode and decode cases for every packet in MQTT 3.1.1 and 5.0.

The CONNECT, PUBLISH, SUBSCRIBE, SUBACK and UNSUBSCRIBE rows follow the non-normative
examples of both specifications (packet id 10, topics "a/b" and "c/d", keep alive 10,
connect flags 0xCE); the hex is written out by hand, not produced by the encoder.
"""

from __future__ import annotations

import pytest

from broker.mqtt import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
    encode,
)
from tests.broker.mqtt.mqtt_helpers import decode_one

SERVER, CLIENT = True, False

CASES: list[tuple[str, int, bool, Packet, str]] = [
    # --- MQTT 3.1.1 ---
    ("connect with will, user name and password (spec flags 0xCE)", 4, SERVER,
     Connect(4, True, 10, "cid", "u", b"pw", Will("w", b"bye", 1, False)),
     "101e 00044d515454 04 ce 000a 0003636964 000177 0003627965 000175 00027077"),
    ("mqtt 3.1 connect named MQIsdp", 3, SERVER,
     Connect(3, True, 60, "c1"),
     "1010 00064d5149736470 03 02 003c 00026331"),
    ("connack with session present", 4, CLIENT, Connack(True, 0), "2002 01 00"),
    ("connack refusing as not authorized", 4, CLIENT, Connack(False, 5), "2002 00 05"),
    ("qos 1 publish (spec example)", 4, SERVER,
     Publish("a/b", b"hi", 1, packet_id=10), "3209 0003612f62 000a 6869"),
    ("retained qos 0 publish with an empty payload", 4, SERVER,
     Publish("a", b"", 0, retain=True), "3103 000161"),
    ("puback", 4, SERVER, Puback(10), "4002 000a"),
    ("pubrec", 4, SERVER, Pubrec(10), "5002 000a"),
    ("pubrel", 4, SERVER, Pubrel(10), "6202 000a"),
    ("pubcomp", 4, SERVER, Pubcomp(10), "7002 000a"),
    ("subscribe (spec example)", 4, SERVER,
     Subscribe(10, [Subscription("a/b", 1), Subscription("c/d", 2)]),
     "820e 000a 0003612f62 01 0003632f64 02"),
    ("suback (spec example)", 4, CLIENT, Suback(10, [0, 1, 2, 0x80]), "9006 000a 00010280"),
    ("unsubscribe (spec example)", 4, SERVER,
     Unsubscribe(10, ["a/b", "c/d"]), "a20c 000a 0003612f62 0003632f64"),
    ("unsuback", 4, CLIENT, Unsuback(10), "b002 000a"),
    ("pingreq", 4, SERVER, Pingreq(), "c000"),
    ("pingresp", 4, CLIENT, Pingresp(), "d000"),
    ("disconnect", 4, SERVER, Disconnect(), "e000"),
    # --- MQTT 5.0 ---
    ("connect with session expiry (spec example)", 5, SERVER,
     Connect(5, True, 10, "cid", "u", b"pw", Will("w", b"bye", 1, False),
             Properties(session_expiry_interval=10)),
     "1025 00044d515454 05 ce 000a 05110000000a 0003636964 00 000177 0003627965 000175"
     " 00027077"),
    ("connack without properties", 5, CLIENT, Connack(False, 0), "2003 00 00 00"),
    ("connack with topic alias maximum and no retain", 5, CLIENT,
     Connack(True, 0, Properties(topic_alias_maximum=10, retain_available=0)),
     "2008 01 00 05 22000a 2500"),
    ("connack refusing as not authorized", 5, CLIENT, Connack(False, 0x87), "2003 00 87 00"),
    ("qos 1 publish (spec example)", 5, SERVER,
     Publish("a/b", b"hi", 1, packet_id=10), "320a 0003612f62 000a 00 6869"),
    ("publish through a topic alias with an empty topic", 5, SERVER,
     Publish("", b"hi", 0, properties=Properties(topic_alias=5)),
     "3008 0000 03 230005 6869"),
    ("qos 2 dup retained publish with message properties", 5, SERVER,
     Publish("x", b"", 2, retain=True, dup=True, packet_id=1, properties=Properties(
         payload_format_indicator=1, message_expiry_interval=60, content_type="t",
         user_properties=[("k", "v")])),
     "3d18 000178 0001 12 0101 020000003c 03000174 2600016b000176"),
    ("publish to a client with two subscription identifiers", 5, CLIENT,
     Publish("a", b"", 0, properties=Properties(subscription_identifiers=[1, 200])),
     "3009 000161 05 0b01 0bc801"),
    ("puback with success and no properties", 5, SERVER, Puback(10), "4002 000a"),
    ("puback with no matching subscribers", 5, SERVER, Puback(10, 0x10), "4003 000a 10"),
    ("puback with a reason string", 5, SERVER,
     Puback(10, 0x87, Properties(reason_string="no")), "4009 000a 87 05 1f00026e6f"),
    ("pubrec refusing", 5, SERVER, Pubrec(10, 0x80), "5003 000a 80"),
    ("pubrel for an unknown packet id", 5, SERVER, Pubrel(10, 0x92), "6203 000a 92"),
    ("pubcomp", 5, SERVER, Pubcomp(10), "7002 000a"),
    ("subscribe with every option and a subscription identifier", 5, SERVER,
     Subscribe(10, [Subscription("a/b", 1, True, True, 2), Subscription("c/d", 2)],
               Properties(subscription_identifiers=[3])),
     "8211 000a 02 0b03 0003612f62 2d 0003632f64 02"),
    ("suback with a refused filter", 5, CLIENT, Suback(10, [0, 1, 0x8F]), "9006 000a 00 00018f"),
    ("unsubscribe", 5, SERVER, Unsubscribe(10, ["a/b"]), "a208 000a 00 0003612f62"),
    ("unsuback", 5, CLIENT, Unsuback(10, [0, 0x11]), "b005 000a 00 0011"),
    ("pingreq", 5, SERVER, Pingreq(), "c000"),
    ("pingresp", 5, CLIENT, Pingresp(), "d000"),
    ("normal disconnect", 5, SERVER, Disconnect(), "e000"),
    ("disconnect with will message", 5, SERVER, Disconnect(0x04), "e001 04"),
    ("disconnect ending the session", 5, SERVER,
     Disconnect(0, Properties(session_expiry_interval=0)), "e007 00 05 1100000000"),
    ("empty auth", 5, SERVER, Auth(), "f000"),
    ("auth continuing", 5, SERVER,
     Auth(0x18, Properties(authentication_method="m")), "f006 18 04 1500016d"),
]

IDS = [f"v{'3.1.1' if level == 4 else '3.1' if level == 3 else '5'}: {name}"
       for name, level, *_ in CASES]


@pytest.mark.parametrize(("name", "level", "server_side", "packet", "wire"), CASES, ids=IDS)
def test_it_encodes_each_packet_to_the_expected_bytes(
    name: str, level: int, server_side: bool, packet: Packet, wire: str
) -> None:
    assert encode(packet, level).hex() == bytes.fromhex(wire).hex()


@pytest.mark.parametrize(("name", "level", "server_side", "packet", "wire"), CASES, ids=IDS)
def test_it_decodes_the_expected_bytes_to_each_packet(
    name: str, level: int, server_side: bool, packet: Packet, wire: str
) -> None:
    assert decode_one(bytes.fromhex(wire), type(packet), level, server_side) == packet


def test_it_drops_properties_and_reason_codes_when_encoding_for_3_1_1() -> None:
    assert encode(Puback(10, 0x87, Properties(reason_string="no")), 4) == bytes.fromhex("4002000a")
    assert encode(Disconnect(0x8B, Properties(reason_string="bye")), 4) == b"\xe0\x00"
    publish = Publish("a", b"x", 0, properties=Properties(content_type="c"))
    assert encode(publish, 4) == bytes.fromhex("3004000161") + b"x"


def test_it_maps_mqtt_5_connack_reasons_to_3_1_1_return_codes_when_encoding() -> None:
    assert encode(Connack(False, 0x86), 4) == bytes.fromhex("20020004")
    assert encode(Connack(False, 0x84), 4) == bytes.fromhex("20020001")
    assert encode(Connack(False, 0x9F), 4) == bytes.fromhex("20020005")


def test_it_maps_mqtt_5_suback_failures_to_0x80_when_encoding_for_3_1_1() -> None:
    assert encode(Suback(1, [0x87, 1, 0x8F]), 4) == bytes.fromhex("90050001800180")


def test_it_refuses_to_encode_auth_for_3_1_1() -> None:
    with pytest.raises(ValueError, match="MQTT 5"):
        encode(Auth(), 4)


def test_it_refuses_to_encode_a_property_that_the_packet_type_does_not_allow() -> None:
    with pytest.raises(ValueError, match="topic_alias"):
        encode(Puback(1, 0x80, Properties(topic_alias=3)), 5)


def test_it_encodes_a_remaining_length_that_needs_several_bytes() -> None:
    data = encode(Publish("t", b"x" * 200, 0), 4)
    # 2 + 1 + 200 = 203 = 0xCB -> varint cb 01 (section 1.5.5 example range 128..16383).
    assert data[:3] == bytes.fromhex("30cb01")
    assert decode_one(data, Publish, 4, True) == Publish("t", b"x" * 200, 0)
