"""MQTT 5 properties (section 2.2.2): the `Properties` container, its codec and limits."""

from __future__ import annotations

from typing import Any

from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import PacketType
from broker.mqtt.reason_codes import ReasonCode
from broker.mqtt.topics import topic_name_problem
from broker.mqtt.wire import (
    MAX_VARINT,
    encode_binary,
    encode_utf8,
    encode_varint,
    malformed,
    pack_u16,
    pack_u32,
    protocol_error,
    read_binary,
    read_utf8,
    read_varint,
    unpack_u16,
    unpack_u32,
)

_FIELDS = (
    "payload_format_indicator", "message_expiry_interval", "content_type", "response_topic",
    "correlation_data", "subscription_identifiers", "session_expiry_interval",
    "assigned_client_identifier", "server_keep_alive", "authentication_method",
    "authentication_data", "request_problem_information", "will_delay_interval",
    "request_response_information", "response_information", "server_reference",
    "reason_string", "receive_maximum", "topic_alias_maximum", "topic_alias", "maximum_qos",
    "retain_available", "user_properties", "maximum_packet_size",
    "wildcard_subscription_available", "subscription_identifier_available",
    "shared_subscription_available",
)


class Properties:
    """One attribute per MQTT 5 property; None means absent.

    `subscription_identifiers` and `user_properties` are lists because those two may
    repeat. Packets without properties carry `properties=None` rather than an empty
    instance, so the common case allocates nothing.

    `order` is the identifiers in the order they arrived (one entry per user property and
    subscription identifier), kept only when it is not identifier order: a forwarded
    message then carries its properties in the publisher's order, as Mosquitto forwards
    them. It takes no part in equality: the order carries no meaning in MQTT.
    """

    __slots__ = (*_FIELDS, "order")

    def __init__(
        self,
        *,
        payload_format_indicator: int | None = None,
        message_expiry_interval: int | None = None,
        content_type: str | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        subscription_identifiers: list[int] | None = None,
        session_expiry_interval: int | None = None,
        assigned_client_identifier: str | None = None,
        server_keep_alive: int | None = None,
        authentication_method: str | None = None,
        authentication_data: bytes | None = None,
        request_problem_information: int | None = None,
        will_delay_interval: int | None = None,
        request_response_information: int | None = None,
        response_information: str | None = None,
        server_reference: str | None = None,
        reason_string: str | None = None,
        receive_maximum: int | None = None,
        topic_alias_maximum: int | None = None,
        topic_alias: int | None = None,
        maximum_qos: int | None = None,
        retain_available: int | None = None,
        user_properties: list[tuple[str, str]] | None = None,
        maximum_packet_size: int | None = None,
        wildcard_subscription_available: int | None = None,
        subscription_identifier_available: int | None = None,
        shared_subscription_available: int | None = None,
        order: tuple[int, ...] | list[int] | None = None,
    ) -> None:
        self.payload_format_indicator = payload_format_indicator
        self.message_expiry_interval = message_expiry_interval
        self.content_type = content_type
        self.response_topic = response_topic
        self.correlation_data = correlation_data
        self.subscription_identifiers = subscription_identifiers
        self.session_expiry_interval = session_expiry_interval
        self.assigned_client_identifier = assigned_client_identifier
        self.server_keep_alive = server_keep_alive
        self.authentication_method = authentication_method
        self.authentication_data = authentication_data
        self.request_problem_information = request_problem_information
        self.will_delay_interval = will_delay_interval
        self.request_response_information = request_response_information
        self.response_information = response_information
        self.server_reference = server_reference
        self.reason_string = reason_string
        self.receive_maximum = receive_maximum
        self.topic_alias_maximum = topic_alias_maximum
        self.topic_alias = topic_alias
        self.maximum_qos = maximum_qos
        self.retain_available = retain_available
        self.user_properties = user_properties
        self.maximum_packet_size = maximum_packet_size
        self.wildcard_subscription_available = wildcard_subscription_available
        self.subscription_identifier_available = subscription_identifier_available
        self.shared_subscription_available = shared_subscription_available
        self.order: tuple[int, ...] | None = None if order is None else tuple(order)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Properties:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        present = ", ".join(
            f"{f}={getattr(self, f)!r}" for f in _FIELDS if getattr(self, f) is not None
        )
        return f"Properties({present})"


UNBOUNDED = MAX_VARINT
"""No packet holds more properties, or property bytes, than it has bytes."""


class DecoderLimits:
    """Caps on what one packet may make the decoder allocate, beyond its byte size.

    Exceeding one is QUOTA_EXCEEDED: the packet is legal MQTT but more than Roost accepts.
    `max_connect_size` instead caps the first packet of a connection (PACKET_TOO_LARGE):
    a CONNECT with every field at its maximum stays well under the default.

    Properties are bounded by default only by the packet size: MQTT lets a server advertise
    a Maximum Packet Size, but no count or size of properties, so a cap here would refuse
    (0x97) packets that are inside every limit the client was told. Decoded user properties
    cost about 11 bytes of memory per byte of packet (measured: a 1.25 MB PUBLISH with 87,000
    pairs, 14.8 MB), so the advertised maximum packet size is what bounds them.
    """

    __slots__ = ("max_properties", "max_user_properties", "max_user_property_bytes",
                 "max_subscriptions", "max_connect_size")

    def __init__(
        self,
        max_properties: int = UNBOUNDED,
        max_user_properties: int = UNBOUNDED,
        max_user_property_bytes: int = UNBOUNDED,
        max_subscriptions: int = 512,
        max_connect_size: int = 1 << 20,
    ) -> None:
        self.max_properties = max_properties
        self.max_user_properties = max_user_properties
        self.max_user_property_bytes = max_user_property_bytes
        self.max_subscriptions = max_subscriptions
        self.max_connect_size = max_connect_size


DEFAULT_LIMITS = DecoderLimits()

# Wire types of property values (section 2.2.2.2).
_BYTE, _U16, _U32, _VARINT, _UTF8, _BINARY, _PAIR = range(7)

_T = PacketType
_ACKS = (_T.PUBACK, _T.PUBREC, _T.PUBREL, _T.PUBCOMP)
_MESSAGE = (_T.PUBLISH, _T.WILL)

# id -> (attribute, wire type, packet types allowed, value must be non-zero)
_TABLE: dict[int, tuple[str, int, tuple[PacketType, ...], bool]] = {
    0x01: ("payload_format_indicator", _BYTE, _MESSAGE, False),
    0x02: ("message_expiry_interval", _U32, _MESSAGE, False),
    0x03: ("content_type", _UTF8, _MESSAGE, False),
    0x08: ("response_topic", _UTF8, _MESSAGE, False),
    0x09: ("correlation_data", _BINARY, _MESSAGE, False),
    0x0B: ("subscription_identifiers", _VARINT, (_T.PUBLISH, _T.SUBSCRIBE), True),
    0x11: ("session_expiry_interval", _U32, (_T.CONNECT, _T.CONNACK, _T.DISCONNECT), False),
    0x12: ("assigned_client_identifier", _UTF8, (_T.CONNACK,), False),
    0x13: ("server_keep_alive", _U16, (_T.CONNACK,), False),
    0x15: ("authentication_method", _UTF8, (_T.CONNECT, _T.CONNACK, _T.AUTH), False),
    0x16: ("authentication_data", _BINARY, (_T.CONNECT, _T.CONNACK, _T.AUTH), False),
    0x17: ("request_problem_information", _BYTE, (_T.CONNECT,), False),
    0x18: ("will_delay_interval", _U32, (_T.WILL,), False),
    0x19: ("request_response_information", _BYTE, (_T.CONNECT,), False),
    0x1A: ("response_information", _UTF8, (_T.CONNACK,), False),
    0x1C: ("server_reference", _UTF8, (_T.CONNACK, _T.DISCONNECT), False),
    0x1F: ("reason_string", _UTF8,
           (_T.CONNACK, *_ACKS, _T.SUBACK, _T.UNSUBACK, _T.DISCONNECT, _T.AUTH), False),
    0x21: ("receive_maximum", _U16, (_T.CONNECT, _T.CONNACK), True),
    0x22: ("topic_alias_maximum", _U16, (_T.CONNECT, _T.CONNACK), False),
    0x23: ("topic_alias", _U16, (_T.PUBLISH,), True),
    0x24: ("maximum_qos", _BYTE, (_T.CONNACK,), False),
    0x25: ("retain_available", _BYTE, (_T.CONNACK,), False),
    0x26: ("user_properties", _PAIR, tuple(PacketType), False),
    0x27: ("maximum_packet_size", _U32, (_T.CONNECT, _T.CONNACK), True),
    0x28: ("wildcard_subscription_available", _BYTE, (_T.CONNACK,), False),
    0x29: ("subscription_identifier_available", _BYTE, (_T.CONNACK,), False),
    0x2A: ("shared_subscription_available", _BYTE, (_T.CONNACK,), False),
}

# Decoding looks up by id; a bit mask of packet types keeps the "allowed here" test cheap.
_DECODE: dict[int, tuple[str, int, int, bool, int]] = {
    pid: (name, kind, sum(1 << t for t in set(types)), nonzero, 1 << pid)
    for pid, (name, kind, types, nonzero) in _TABLE.items()
}
_ENCODE: tuple[tuple[int, str, int, int], ...] = tuple(
    (pid, name, kind, sum(1 << t for t in set(types)))
    for pid, (name, kind, types, _) in sorted(_TABLE.items())
)
# CONNACK properties go out in Mosquitto's order (what it sets in handle_connect.c, then
# in send_connack.c), so clients and tests comparing CONNACK bytes see the same packet.
_CONNACK_ORDER = (0x13, 0x22, 0x12, 0x15, 0x16, 0x11, 0x1A, 0x1C, 0x1F, 0x26,
                  0x25, 0x27, 0x21, 0x24, 0x28, 0x29, 0x2A)
_CONNACK_ENCODE = tuple(
    sorted((e for e in _ENCODE if (1 << PacketType.CONNACK) & e[3]),
           key=lambda e: _CONNACK_ORDER.index(e[0]))
)

_BY_ID: dict[int, tuple[str, int, int]] = {pid: (name, kind, mask) for pid, name, kind, mask in _ENCODE}

PROPERTY_IDS: dict[str, int] = {name: pid for pid, (name, *_) in _TABLE.items()}
"""Attribute name -> MQTT property identifier, for error messages and tests."""


def allowed_properties(packet_type: PacketType) -> frozenset[str]:
    """The attribute names MQTT 5 allows on `packet_type` (WILL for will properties)."""
    return frozenset(name for name, _, types, _ in _TABLE.values() if packet_type in types)


def decode_properties(
    data: bytes, pos: int, end: int, packet_type: int, limits: DecoderLimits = DEFAULT_LIMITS
) -> tuple[Properties | None, int]:
    """Read a property section at `pos`; return (None, next) for an empty one."""
    if pos >= end:
        raise malformed("missing property length")
    length = data[pos]
    if length < 0x80:
        pos += 1
    else:
        length, pos = read_varint(data, pos, end)
    if length == 0:
        return None, pos
    stop = pos + length
    if stop > end:
        raise malformed("property length runs past the packet")
    props = Properties()
    seen = 0
    last = 0
    order: list[int] | None = None
    count = 0
    user_count = 0
    user_bytes = 0
    type_bit = 1 << packet_type
    while pos < stop:
        pid = data[pos]
        spec = _DECODE.get(pid)
        if spec is None:
            # Section 2.2.2.2: an identifier not valid for the packet type is malformed.
            raise malformed(f"unknown property identifier 0x{pid:02X}")
        name, kind, mask, nonzero, bit = spec
        if not mask & type_bit:
            raise malformed(f"property {name} is not allowed on {PacketType(packet_type).name}")
        if pid < last and order is None:
            order = _arrival_so_far(props)  # until now it was identifier order
        last = pid
        pos += 1
        count += 1
        if count > limits.max_properties:
            raise ProtocolError(ReasonCode.QUOTA_EXCEEDED, "too many properties")
        value: Any
        if kind == _UTF8:
            value, pos = read_utf8(data, pos, stop)
            if pid == 0x08 and topic_name_problem(value) is not None:
                # [MQTT-3.3.2-14]: the response topic is a topic name, never a filter.
                raise protocol_error("response topic must be a topic name")
        elif kind == _PAIR:
            pairs = props.user_properties
            if pairs is None:
                pairs = props.user_properties = []
            # Clients may send thousands of pairs in a row: read the run in one tight loop.
            run = 0
            while True:
                # Inlined read_utf8 for the common case (both strings ASCII, in bounds);
                # read_utf8 itself handles the rest and raises the precise error.
                key_end = pos + 2 + ((data[pos] << 8) | data[pos + 1]) if pos + 2 <= stop else stop + 1
                val_end = key_end + 2 + ((data[key_end] << 8) | data[key_end + 1]) if key_end + 2 <= stop else stop + 1
                key_raw = data[pos + 2:key_end]
                val_raw = data[key_end + 2:val_end]
                if (val_end <= stop and key_raw.isascii() and val_raw.isascii()
                        and 0 not in key_raw and 0 not in val_raw):
                    key = key_raw.decode("ascii")
                    val = val_raw.decode("ascii")
                    pos = val_end
                else:
                    key, pos = read_utf8(data, pos, stop)
                    val, pos = read_utf8(data, pos, stop)
                run += 1
                user_bytes += len(key) + len(val)
                pairs.append((key, val))
                if pos >= stop or data[pos] != 0x26:
                    break
                pos += 1
            user_count += run
            count += run - 1
            if order is not None:
                order.extend([0x26] * run)
            if count > limits.max_properties:
                raise ProtocolError(ReasonCode.QUOTA_EXCEEDED, "too many properties")
            if user_count > limits.max_user_properties:
                raise ProtocolError(ReasonCode.QUOTA_EXCEEDED, "too many user properties")
            if user_bytes > limits.max_user_property_bytes:
                raise ProtocolError(ReasonCode.QUOTA_EXCEEDED, "user properties too large")
            continue
        elif kind == _BYTE:
            if pos >= stop:
                raise malformed(f"property {name} runs past its section")
            value = data[pos]
            pos += 1
            if value > 1:
                # Every one-byte property is a 0/1 flag or maximum_qos, which is 0 or 1 too.
                raise protocol_error(f"property {name} must be 0 or 1, got {value}")
        elif kind == _U16:
            if pos + 2 > stop:
                raise malformed(f"property {name} runs past its section")
            value = unpack_u16(data, pos)[0]
            pos += 2
        elif kind == _U32:
            if pos + 4 > stop:
                raise malformed(f"property {name} runs past its section")
            value = unpack_u32(data, pos)[0]
            pos += 4
        elif kind == _BINARY:
            value, pos = read_binary(data, pos, stop)
        else:
            value, pos = read_varint(data, pos, stop)
            if value == 0:
                raise protocol_error("subscription identifier 0")  # section 3.8.2.1.2
            if props.subscription_identifiers is None:
                props.subscription_identifiers = [value]
            elif packet_type == PacketType.PUBLISH:
                # A forwarded PUBLISH names every matching subscription. [MQTT-3.3.4-3]
                props.subscription_identifiers.append(value)
            else:
                raise protocol_error("subscription identifier included more than once")
            if order is not None:
                order.append(0x0B)
            continue
        if seen & bit:
            raise protocol_error(f"property {name} included more than once")
        seen |= bit
        if nonzero and value == 0:
            raise protocol_error(f"property {name} must not be 0")
        setattr(props, name, value)
        if order is not None:
            order.append(pid)
    if order is not None:
        props.order = tuple(order)
    return props, pos


def _arrival_so_far(props: Properties) -> list[int]:
    """The identifiers decoded so far, all of which came in identifier order."""
    order: list[int] = []
    for pid, name, kind, _ in _ENCODE:
        value = getattr(props, name)
        if value is not None:
            order.extend([pid] * (len(value) if kind in (_PAIR, _VARINT) else 1))
    return order


def encode_properties(props: Properties | None, packet_type: int) -> bytes:
    """Encode a property section, length prefix included (b"\\x00" when empty).

    Raises ValueError for a property MQTT 5 does not allow on `packet_type`: that is a
    bug in the caller, not bad input from a peer.
    """
    if props is None:
        return b"\x00"
    body = encode_property_list(props, packet_type)
    return encode_varint(len(body)) + body


def encode_property_list(props: Properties, packet_type: int) -> bytes:
    """The properties alone, without the section's length: parts a caller may join.

    In `props.order` when it is set (properties it does not name follow in identifier
    order); otherwise in identifier order, or Mosquitto's order for a CONNACK.
    """
    out: list[bytes] = []
    type_bit = 1 << packet_type
    if props.order is not None and packet_type != _T.CONNACK:
        return _encode_in_order(props, props.order, type_bit)
    for pid, name, kind, mask in _CONNACK_ENCODE if packet_type == _T.CONNACK else _ENCODE:
        value = getattr(props, name)
        if value is None:
            continue
        if not mask & type_bit:
            raise ValueError(f"property {name} is not allowed on {PacketType(packet_type).name}")
        if kind == _PAIR:
            for key, val in value:
                out.append(b"\x26" + encode_utf8(key) + encode_utf8(val))
        elif kind == _VARINT:
            for sub_id in value:
                out.append(b"\x0b" + encode_varint(sub_id))
        else:
            out.append(_encode_one(pid, kind, value))
    return b"".join(out)


def _encode_one(pid: int, kind: int, value: Any) -> bytes:
    if kind == _BYTE:
        return bytes((pid, value))
    if kind == _U16:
        return bytes((pid,)) + pack_u16(value)
    if kind == _U32:
        return bytes((pid,)) + pack_u32(value)
    if kind == _UTF8:
        return bytes((pid,)) + encode_utf8(value)
    return bytes((pid,)) + encode_binary(value)


def _encode_in_order(props: Properties, order: tuple[int, ...], type_bit: int) -> bytes:
    out: list[bytes] = []
    pairs = iter(props.user_properties or ())
    sub_ids = iter(props.subscription_identifiers or ())
    written = set()
    for pid in order:
        spec = _BY_ID.get(pid)
        if spec is None:
            continue
        name, kind, mask = spec
        if kind == _PAIR:
            pair = next(pairs, None)
            if pair is None:
                continue
            encoded = b"\x26" + encode_utf8(pair[0]) + encode_utf8(pair[1])
        elif kind == _VARINT:
            sub_id = next(sub_ids, None)
            if sub_id is None:
                continue
            encoded = b"\x0b" + encode_varint(sub_id)
        else:
            value = getattr(props, name)
            if value is None or pid in written:
                continue
            written.add(pid)
            encoded = _encode_one(pid, kind, value)
        if not mask & type_bit:
            raise ValueError(f"property {name} is not allowed on this packet type")
        out.append(encoded)
    # Whatever the order does not name (set after decoding) follows in identifier order.
    for pid, name, kind, mask in _ENCODE:
        if pid in written:
            continue
        rest: list[Any]
        if kind == _PAIR:
            rest = [b"\x26" + encode_utf8(key) + encode_utf8(val) for key, val in pairs]
        elif kind == _VARINT:
            rest = [b"\x0b" + encode_varint(sub_id) for sub_id in sub_ids]
        else:
            value = getattr(props, name)
            rest = [] if value is None else [_encode_one(pid, kind, value)]
        if rest and not mask & type_bit:
            raise ValueError(f"property {name} is not allowed on this packet type")
        out.extend(rest)
    return b"".join(out)
