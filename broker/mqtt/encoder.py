"""Packet encoding for MQTT 3.1, 3.1.1 and 5.0.

For 3.1/3.1.1, properties are dropped and reason codes are either dropped or mapped to
the older return codes. The encoder trusts its input (the broker built it); values out of
range raise ValueError or struct.error rather than ProtocolError.
"""

from __future__ import annotations

import struct

from broker.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from broker.mqtt.properties import encode_properties
from broker.mqtt.reason_codes import connack_code_311
from broker.mqtt.wire import encode_binary, encode_utf8, encode_varint, pack_u16

_PINGREQ = b"\xc0\x00"
_PINGRESP = b"\xd0\x00"
_DISCONNECT_311 = b"\xe0\x00"
_NO_PROPERTIES = b"\x00"
# First byte, one-byte remaining length and topic length of a short PUBLISH, in one call.
_PACK_HEAD = struct.Struct("!BBH").pack


def _frame(first_byte: int, body: bytes) -> bytes:
    length = len(body)
    if length < 128:
        return bytes((first_byte, length)) + body
    return bytes((first_byte,)) + encode_varint(length) + body


def encode_publish(
    topic: bytes,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int,
    properties: bytes,
    protocol_level: int,
) -> bytes:
    """Encode a PUBLISH from already-encoded parts; the broker's per-message fast path.

    `topic` is the UTF-8 topic name, `properties` a section from `encode_properties`
    (b"" for none; ignored below MQTT 5), `packet_id` is ignored for QoS 0. For QoS > 0
    the two-byte big-endian packet id sits at `publish_packet_id_offset(encoded)`, which
    is `1 + len(varint(remaining length)) + 2 + len(topic)`: encode once, then patch
    that slice for each subscriber.
    """
    first = 0x30 | qos << 1
    if retain:
        first |= 0x01
    if dup:
        first |= 0x08
    if protocol_level >= 5:
        if not properties:
            properties = _NO_PROPERTIES
    else:
        properties = b""
    topic_length = len(topic)
    length = 2 + topic_length + len(properties) + len(payload)
    if qos:
        length += 2
    if length < 128:
        head = _PACK_HEAD(first, length, topic_length)
    else:
        head = bytes((first,)) + encode_varint(length) + pack_u16(topic_length)
    if qos:
        return b"".join((head, topic, pack_u16(packet_id), properties, payload))
    return b"".join((head, topic, properties, payload))


def publish_packet_id_offset(encoded: bytes) -> int:
    """Index of the two-byte packet id in an encoded QoS 1/2 PUBLISH (ValueError for QoS 0)."""
    if not encoded[0] & 0x06:
        raise ValueError("a QoS 0 PUBLISH has no packet id")
    pos = 1
    while encoded[pos] & 0x80:
        pos += 1
    pos += 1
    return pos + 2 + ((encoded[pos] << 8) | encoded[pos + 1])


def _publish(packet: Publish, level: int) -> bytes:
    props = b""
    if level >= 5 and packet.properties is not None:
        props = encode_properties(packet.properties, PacketType.PUBLISH)
    return encode_publish(
        packet.topic.encode("utf-8"), packet.payload, packet.qos, packet.retain, packet.dup,
        packet.packet_id or 0, props, level,
    )


def _connect(packet: Connect, level: int) -> bytes:
    flags = 0x02 if packet.clean_start else 0
    will = packet.will
    if will is not None:
        flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
    if packet.username is not None:
        flags |= 0x80
    if packet.password is not None:
        flags |= 0x40
    name = b"\x00\x06MQIsdp" if level == 3 else b"\x00\x04MQTT"
    version = level | 0x80 if packet.bridge and level < 5 else level
    parts = [name, bytes((version, flags)), pack_u16(packet.keep_alive)]
    if level >= 5:
        parts.append(encode_properties(packet.properties, PacketType.CONNECT))
    parts.append(encode_utf8(packet.client_id))
    if will is not None:
        if level >= 5:
            parts.append(encode_properties(will.properties, PacketType.WILL))
        parts.append(encode_utf8(will.topic))
        parts.append(encode_binary(will.payload))
    if packet.username is not None:
        parts.append(encode_utf8(packet.username))
    if packet.password is not None:
        parts.append(encode_binary(packet.password))
    return _frame(0x10, b"".join(parts))


def _connack(packet: Connack, level: int) -> bytes:
    # MQTT 3.1 has no session present flag; that byte is reserved there.
    flags = b"\x01" if packet.session_present and level > 3 else b"\x00"
    if level >= 5:
        props = encode_properties(packet.properties, PacketType.CONNACK)
        return _frame(0x20, flags + bytes((packet.reason_code,)) + props)
    code = packet.reason_code
    if code > 5:
        code = connack_code_311(code)
    return bytes((0x20, 2)) + flags + bytes((code,))


_RESPONSE_FIRST_BYTE = {
    PacketType.PUBACK: 0x40, PacketType.PUBREC: 0x50, PacketType.PUBREL: 0x62,
    PacketType.PUBCOMP: 0x70,
}


def encode_ack(first_byte: int, packet_id: int) -> bytes:
    """PUBACK (0x40), PUBREC (0x50), PUBREL (0x62) or PUBCOMP (0x70) with reason 0 and no
    properties: the same four bytes in every version (section 3.4.2.1), with no packet
    object to build on the per-message path."""
    return bytes((first_byte, 2, packet_id >> 8, packet_id & 0xFF))


def _pub_response(packet: Puback | Pubrec | Pubrel | Pubcomp, level: int) -> bytes:
    first_byte = _RESPONSE_FIRST_BYTE[packet.packet_type]
    packet_id = pack_u16(packet.packet_id)
    if level < 5 or (packet.reason_code == 0 and packet.properties is None):
        # Section 3.4.2.1: reason 0 with no properties may be omitted entirely.
        return bytes((first_byte, 2)) + packet_id
    if packet.properties is None:
        return bytes((first_byte, 3)) + packet_id + bytes((packet.reason_code,))
    props = encode_properties(packet.properties, packet.packet_type)
    return _frame(first_byte, packet_id + bytes((packet.reason_code,)) + props)


def _subscribe(packet: Subscribe, level: int) -> bytes:
    parts = [pack_u16(packet.packet_id)]
    if level >= 5:
        parts.append(encode_properties(packet.properties, PacketType.SUBSCRIBE))
    for sub in packet.subscriptions:
        options = sub.qos
        if level >= 5:
            options |= (
                (0x04 if sub.no_local else 0)
                | (0x08 if sub.retain_as_published else 0)
                | sub.retain_handling << 4
            )
        parts.append(encode_utf8(sub.topic_filter) + bytes((options,)))
    return _frame(0x82, b"".join(parts))


def _suback(packet: Suback, level: int) -> bytes:
    packet_id = pack_u16(packet.packet_id)
    if level >= 5:
        props = encode_properties(packet.properties, PacketType.SUBACK)
        return _frame(0x90, packet_id + props + bytes(packet.reason_codes))
    # 3.1.1 knows only the granted QoS or 0x80 (failure).
    codes = bytes(c if c < 0x80 else 0x80 for c in packet.reason_codes)
    return _frame(0x90, packet_id + codes)


def _unsubscribe(packet: Unsubscribe, level: int) -> bytes:
    parts = [pack_u16(packet.packet_id)]
    if level >= 5:
        parts.append(encode_properties(packet.properties, PacketType.UNSUBSCRIBE))
    parts.extend(encode_utf8(f) for f in packet.topic_filters)
    return _frame(0xA2, b"".join(parts))


def _unsuback(packet: Unsuback, level: int) -> bytes:
    packet_id = pack_u16(packet.packet_id)
    if level >= 5:
        props = encode_properties(packet.properties, PacketType.UNSUBACK)
        return _frame(0xB0, packet_id + props + bytes(packet.reason_codes))
    return b"\xb0\x02" + packet_id


def _disconnect(packet: Disconnect, level: int) -> bytes:
    if level < 5:
        return _DISCONNECT_311
    if packet.properties is None:
        if packet.reason_code == 0:
            return b"\xe0\x00"  # Section 3.14.2.1: reason 0 may be omitted.
        return bytes((0xE0, 1, packet.reason_code))
    props = encode_properties(packet.properties, PacketType.DISCONNECT)
    return _frame(0xE0, bytes((packet.reason_code,)) + props)


def _auth(packet: Auth, level: int) -> bytes:
    if level < 5:
        raise ValueError("AUTH exists in MQTT 5 only")
    if packet.properties is None and packet.reason_code == 0:
        return b"\xf0\x00"  # Section 3.15.2.1: success with no properties may be empty.
    props = encode_properties(packet.properties, PacketType.AUTH)
    return _frame(0xF0, bytes((packet.reason_code,)) + props)


def encode(packet: Packet, protocol_level: int) -> bytes:
    """Encode any packet for a connection speaking `protocol_level` (3, 4 or 5)."""
    if type(packet) is Publish:
        return _publish(packet, protocol_level)
    if isinstance(packet, Puback | Pubrec | Pubrel | Pubcomp):
        return _pub_response(packet, protocol_level)
    if isinstance(packet, Pingreq):
        return _PINGREQ
    if isinstance(packet, Pingresp):
        return _PINGRESP
    if isinstance(packet, Subscribe):
        return _subscribe(packet, protocol_level)
    if isinstance(packet, Suback):
        return _suback(packet, protocol_level)
    if isinstance(packet, Unsubscribe):
        return _unsubscribe(packet, protocol_level)
    if isinstance(packet, Unsuback):
        return _unsuback(packet, protocol_level)
    if isinstance(packet, Connect):
        return _connect(packet, protocol_level)
    if isinstance(packet, Connack):
        return _connack(packet, protocol_level)
    if isinstance(packet, Disconnect):
        return _disconnect(packet, protocol_level)
    if isinstance(packet, Auth):
        return _auth(packet, protocol_level)
    raise TypeError(f"not an MQTT packet: {packet!r}")
