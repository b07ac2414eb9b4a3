"""Incremental, sans-I/O decoding of MQTT 3.1, 3.1.1 and 5.0 packets.

Every check here answers a normative statement of the specifications; ids such as
[MQTT-3.3.1-4] refer to MQTT 5.0 unless marked 3.1.1. Bad input raises ProtocolError and
nothing else.
"""

from __future__ import annotations

from broker.mqtt.errors import ProtocolError
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
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from broker.mqtt.properties import DEFAULT_LIMITS, DecoderLimits, Properties, decode_properties
from broker.mqtt.reason_codes import (
    AUTH_REASONS,
    CONNACK_REASONS,
    DISCONNECT_REASONS,
    PUBACK_REASONS,
    PUBREL_REASONS,
    SUBACK_REASONS,
    SUBACK_REASONS_311,
    UNSUBACK_REASONS,
    ReasonCode,
)
from broker.mqtt.topics import SHARE_PREFIX, topic_name_problem
from broker.mqtt.wire import (
    MAX_VARINT,
    decode_utf8,
    malformed,
    protocol_error,
    read_binary,
    read_utf8,
    unpack_u16,
)

_T = PacketType

# Fixed-header flag bits every packet but PUBLISH must carry. [MQTT-2.1.3-1]
_REQUIRED_FLAGS = (None, 0, 0, None, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0)
_SERVER_ONLY = frozenset({_T.CONNACK, _T.SUBACK, _T.UNSUBACK, _T.PINGRESP})
_CLIENT_ONLY = frozenset({_T.CONNECT, _T.SUBSCRIBE, _T.UNSUBSCRIBE, _T.PINGREQ})
_PUB_RESPONSES: dict[int, tuple[type[Puback | Pubrec | Pubrel | Pubcomp], frozenset[int]]] = {
    _T.PUBACK: (Puback, PUBACK_REASONS),
    _T.PUBREC: (Pubrec, PUBACK_REASONS),
    _T.PUBREL: (Pubrel, PUBREL_REASONS),
    _T.PUBCOMP: (Pubcomp, PUBREL_REASONS),
}
# What a server may send in PUBACK/PUBREC: Mosquitto answers a payload over its
# message_size_limit with 0x95 (packet too large), outside the list in section 3.4.2.1.
_FROM_SERVER_PUB_REASONS = PUBACK_REASONS | {0x95}
_PROTOCOLS = {(b"MQTT", 4), (b"MQTT", 5), (b"MQIsdp", 3)}


def _packet_id(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 2 > end:
        raise malformed("packet identifier runs past the packet")
    packet_id = unpack_u16(data, pos)[0]
    if packet_id == 0:
        raise protocol_error("packet identifier 0")  # [MQTT-2.2.1-3]
    return packet_id, pos + 2


def _expect_end(pos: int, end: int, what: str) -> None:
    if pos != end:
        raise malformed(f"{end - pos} unexpected bytes after the {what} content")


_ALIAS_ONLY: dict[int, Properties] = {}
"""One shared, read-only Properties per alias: building one costs as much as the rest of
decoding a PUBLISH. Decoded properties are never modified, by the broker or anyone."""


def decode_publish(
    first: int,
    data: bytes,
    pos: int,
    end: int,
    level: int,
    server_side: bool = True,
    limits: DecoderLimits = DEFAULT_LIMITS,
) -> Publish:
    """Decode a PUBLISH body `data[pos:end]` whose fixed header's first byte is `first`."""
    qos = (first >> 1) & 3
    if qos == 3:
        raise malformed("PUBLISH with QoS 3")  # [MQTT-3.3.1-4]
    dup = first & 0x08
    if dup and not qos and level >= 5:
        # [MQTT-3.3.1-2]; 3.1.1 peers that set it anyway are tolerated, since 3.1.1
        # names no consequence and some old clients resend QoS 0 messages that way.
        raise malformed("PUBLISH with QoS 0 and DUP set")
    if pos + 2 > end:
        raise malformed("topic name runs past the packet")
    stop = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if stop > end:
        raise malformed("topic name runs past the packet")
    raw = data[pos + 2 : stop]
    if 43 in raw or 35 in raw:
        # "+" or "#" [MQTT-3.3.2-2]: `topics.topic_name_problem` on the raw bytes, for every
        # PUBLISH. UTF-8 never puts these bytes inside another character, and testing for
        # an int is a memchr where a bytes needle is a substring search.
        raise ProtocolError(ReasonCode.TOPIC_NAME_INVALID, "wildcard in a PUBLISH topic name")
    if raw.isascii():
        if 0 in raw:
            raise malformed("topic name contains U+0000")  # [MQTT-1.5.4-2]
        topic = raw.decode("ascii")
    else:
        topic = decode_utf8(raw)
    pos = stop
    packet_id = None
    if qos:
        if pos + 2 > end:
            raise malformed("packet identifier runs past the packet")
        packet_id = (data[pos] << 8) | data[pos + 1]
        if packet_id == 0:
            raise protocol_error("PUBLISH with packet identifier 0")  # [MQTT-2.2.1-3]
        pos += 2
    props: Properties | None = None
    if level >= 5:
        section = data[pos] if pos < end else -1
        if section == 0:
            pos += 1
        elif section == 3 and pos + 4 <= end and data[pos + 1] == 0x23:
            # A topic alias alone is the common MQTT 5 case; skip the general property loop.
            alias = (data[pos + 2] << 8) | data[pos + 3]
            if alias == 0:
                raise protocol_error("property topic_alias must not be 0")  # [MQTT-3.3.2-8]
            props = _ALIAS_ONLY.get(alias)
            if props is None:
                props = _ALIAS_ONLY[alias] = Properties(topic_alias=alias)
            pos += 4
        else:
            props, pos = decode_properties(data, pos, end, _T.PUBLISH, limits)
            if props is not None and server_side and props.subscription_identifiers:
                # [MQTT-3.3.4-6]
                raise protocol_error("PUBLISH from a client with a subscription identifier")
        if not topic and (props is None or props.topic_alias is None):
            # Section 3.3.2.3.4: only an alias may stand in for the topic name.
            raise protocol_error("empty topic name without a topic alias")
    elif not topic:
        # 3.1.1 [MQTT-4.7.3-1]
        raise ProtocolError(ReasonCode.TOPIC_NAME_INVALID, "empty topic name")
    return Publish(topic, data[pos:end], qos, first & 1 == 1, dup != 0, packet_id, props)


def _decode_will(
    flags: int, data: bytes, pos: int, end: int, level: int, limits: DecoderLimits
) -> tuple[Will, int]:
    props = None
    if level >= 5:
        props, pos = decode_properties(data, pos, end, _T.WILL, limits)
    topic, pos = read_utf8(data, pos, end)
    if topic_name_problem(topic) is not None:
        # The will topic is a topic name: non-empty, no wildcards. [MQTT-4.7.0-1] [MQTT-4.7.3-1]
        raise ProtocolError(ReasonCode.TOPIC_NAME_INVALID, "invalid will topic")
    payload, pos = read_binary(data, pos, end)
    will = Will(topic, payload, (flags >> 3) & 3, bool(flags & 0x20), props)
    return will, pos


def _decode_connect(dec: StreamDecoder, data: bytes, pos: int, end: int) -> Connect:
    if pos + 2 > end:
        raise malformed("protocol name runs past the packet")
    name_end = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if name_end + 1 > end:
        raise malformed("protocol level runs past the packet")
    name = data[pos + 2 : name_end]
    level = data[name_end]
    bridge = level in (0x83, 0x84)
    if bridge:
        level &= 0x7F  # Mosquitto's bridges set the top bit of 3.1 and 3.1.1 levels
    if (name, level) not in _PROTOCOLS:
        # [MQTT-3.1.2-1] [MQTT-3.1.2-2]; 3.1.1 answers CONNACK return code 1.
        raise ProtocolError(
            ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
            f"unsupported protocol {name!r} level {level}",
        )
    # Known before the rest is checked, so a refusal can be encoded in the right version.
    dec.protocol_level = level
    pos = name_end + 1
    if pos + 3 > end:
        raise malformed("CONNECT variable header runs past the packet")
    flags = data[pos]
    keep_alive = unpack_u16(data, pos + 1)[0]
    pos += 3
    if flags & 0x01:
        raise malformed("CONNECT reserved flag set")  # [MQTT-3.1.2-3]
    will_flag = flags & 0x04
    will_qos = (flags >> 3) & 3
    if not will_flag and (will_qos or flags & 0x20):
        # [MQTT-3.1.2-11] [MQTT-3.1.2-13]
        raise malformed("will QoS or will retain set without the will flag")
    if will_qos == 3:
        raise malformed("will QoS 3")  # [MQTT-3.1.2-12]
    if level < 5 and flags & 0x40 and not flags & 0x80:
        raise malformed("password flag without user name flag")  # 3.1.1 [MQTT-3.1.2-22]
    limits = dec.limits
    props = None
    if level >= 5:
        props, pos = decode_properties(data, pos, end, _T.CONNECT, limits)
        if (
            props is not None
            and props.authentication_data is not None
            and props.authentication_method is None
        ):
            raise protocol_error("authentication data without an authentication method")
    client_id, pos = read_utf8(data, pos, end)
    if not client_id and (level == 3 or (level == 4 and not flags & 0x02)):
        # 3.1.1 [MQTT-3.1.3-8]; MQTT 3.1 has no empty client identifiers at all.
        raise ProtocolError(
            ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
            "empty client identifier without a clean session"
            if level == 4
            else "MQTT 3.1 needs a client identifier",
        )
    will = None
    if will_flag:
        will, pos = _decode_will(flags, data, pos, end, level, limits)
    username = None
    if flags & 0x80:
        username, pos = read_utf8(data, pos, end)
    password = None
    if flags & 0x40:
        password, pos = read_binary(data, pos, end)
    _expect_end(pos, end, "CONNECT")
    return Connect(
        level, bool(flags & 0x02), keep_alive, client_id, username, password, will, props,
        bridge,
    )


def _decode_connack(data: bytes, pos: int, end: int, level: int, limits: DecoderLimits) -> Connack:
    if pos + 2 > end:
        raise malformed("CONNACK too short")
    flags = data[pos]
    code = data[pos + 1]
    pos += 2
    if flags & 0xFE:
        raise malformed("CONNACK reserved flags set")  # [MQTT-3.2.2-1]
    props = None
    if level >= 5:
        if code not in CONNACK_REASONS:
            raise malformed(f"CONNACK reason code 0x{code:02X}")
        props, pos = decode_properties(data, pos, end, _T.CONNACK, limits)
    elif code > 5:
        raise malformed(f"CONNACK return code {code}")
    if code and flags:
        raise protocol_error("session present on a refused connection")  # [MQTT-3.2.2-6]
    _expect_end(pos, end, "CONNACK")
    return Connack(bool(flags), code, props)


def _decode_pub_response(
    ptype: int, data: bytes, pos: int, end: int, level: int, server_side: bool, limits: DecoderLimits
) -> Packet:
    cls, allowed = _PUB_RESPONSES[ptype]
    if not server_side and allowed is PUBACK_REASONS:
        allowed = _FROM_SERVER_PUB_REASONS
    packet_id, pos = _packet_id(data, pos, end)
    if level < 5 or pos == end:
        # 5.0 section 3.4.2.1: a bare packet id means success with no properties.
        _expect_end(pos, end, cls.__name__.upper())
        return cls(packet_id)
    code = data[pos]
    if code not in allowed:
        raise malformed(f"{cls.__name__.upper()} reason code 0x{code:02X}")
    pos += 1
    props = None
    if pos < end:
        props, pos = decode_properties(data, pos, end, ptype, limits)
        _expect_end(pos, end, cls.__name__.upper())
    return cls(packet_id, code, props)


def _subscription_packet_id(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """A SUBSCRIBE/UNSUBSCRIBE packet identifier; 0 makes the packet malformed.

    [MQTT-2.2.1-3] names no reason code; unlike the spec's explicit "Protocol Error"
    cases (QoS 3, retain handling 3, no payload, subscription identifier 0) this one is
    a field that fails to parse, which is what Mosquitto answers as well (0x81)."""
    if pos + 2 > end:
        raise malformed("packet identifier runs past the packet")
    packet_id = unpack_u16(data, pos)[0]
    if packet_id == 0:
        raise malformed(f"{what} with packet identifier 0")
    return packet_id, pos + 2


def _subscription_properties(
    data: bytes, pos: int, end: int, ptype: int, limits: DecoderLimits
) -> tuple[Properties | None, int]:
    """A SUBSCRIBE's or UNSUBSCRIBE's properties; every fault in them is a malformed packet
    (DISCONNECT 0x81), as Mosquitto reports it, a protocol error included."""
    try:
        return decode_properties(data, pos, end, ptype, limits)
    except ProtocolError as error:
        if error.reason_code != ReasonCode.PROTOCOL_ERROR:
            raise
        raise malformed(error.message) from None


def _decode_subscribe(data: bytes, pos: int, end: int, level: int, limits: DecoderLimits) -> Subscribe:
    packet_id, pos = _subscription_packet_id(data, pos, end, "SUBSCRIBE")
    props = None
    if level >= 5:
        props, pos = _subscription_properties(data, pos, end, _T.SUBSCRIBE, limits)
    subscriptions: list[Subscription] = []
    cap = limits.max_subscriptions
    while pos < end:
        topic_filter, pos = read_utf8(data, pos, end)
        if pos >= end:
            raise malformed("subscription options missing")
        options = data[pos]
        pos += 1
        qos = options & 0x03
        if level < 5:
            if options & 0xFC or qos == 3:
                # 3.1.1 [MQTT-3-8.3-4]: reserved bits or QoS 3 make it malformed.
                raise malformed("subscription reserved bits set or QoS 3")
            subscriptions.append(Subscription(topic_filter, qos))
        else:
            if options & 0xC0:
                raise malformed("subscription reserved bits set")  # [MQTT-3.8.3-5]
            # QoS 3 and retain handling 3 are protocol errors in section 3.8.3.1; Mosquitto
            # calls them malformed, as it does every fault of a SUBSCRIBE.
            if qos == 3:
                raise malformed("subscription with maximum QoS 3")
            retain_handling = (options >> 4) & 0x03
            if retain_handling == 3:
                raise malformed("retain handling 3")
            no_local = bool(options & 0x04)
            if no_local and topic_filter.startswith(SHARE_PREFIX):
                raise protocol_error("no local on a shared subscription")  # [MQTT-3.8.3-4]
            subscriptions.append(
                Subscription(topic_filter, qos, no_local, bool(options & 0x08), retain_handling)
            )
        if len(subscriptions) > cap:
            raise ProtocolError(ReasonCode.QUOTA_EXCEEDED, "too many subscriptions in SUBSCRIBE")
    if not subscriptions:
        # [MQTT-3.8.3-2] (3.1.1: [MQTT-3.8.3-3])
        raise malformed("SUBSCRIBE without subscriptions")
    return Subscribe(packet_id, subscriptions, props)


def _decode_unsubscribe(
    data: bytes, pos: int, end: int, level: int, limits: DecoderLimits
) -> Unsubscribe:
    packet_id, pos = _subscription_packet_id(data, pos, end, "UNSUBSCRIBE")
    props = None
    if level >= 5:
        props, pos = _subscription_properties(data, pos, end, _T.UNSUBSCRIBE, limits)
    filters: list[str] = []
    cap = limits.max_subscriptions
    while pos < end:
        topic_filter, pos = read_utf8(data, pos, end)
        filters.append(topic_filter)
        if len(filters) > cap:
            raise ProtocolError(ReasonCode.QUOTA_EXCEEDED, "too many filters in UNSUBSCRIBE")
    if not filters:
        raise malformed("UNSUBSCRIBE without topic filters")  # [MQTT-3.10.3-2]
    return Unsubscribe(packet_id, filters, props)


def _decode_ack_list(
    ptype: int, data: bytes, pos: int, end: int, level: int, limits: DecoderLimits
) -> Packet:
    packet_id, pos = _packet_id(data, pos, end)
    props = None
    if level >= 5:
        props, pos = decode_properties(data, pos, end, ptype, limits)
    codes = list(data[pos:end])
    if ptype == _T.UNSUBACK:
        if level < 5:
            _expect_end(pos, end, "UNSUBACK")
            return Unsuback(packet_id)
        allowed = UNSUBACK_REASONS
    else:
        allowed = SUBACK_REASONS if level >= 5 else SUBACK_REASONS_311
    if not codes:
        raise protocol_error(f"{PacketType(ptype).name} without reason codes")
    for code in codes:
        if code not in allowed:
            raise malformed(f"{PacketType(ptype).name} reason code 0x{code:02X}")
    if ptype == _T.UNSUBACK:
        return Unsuback(packet_id, codes, props)
    return Suback(packet_id, codes, props)


def _decode_disconnect_or_auth(
    ptype: int, data: bytes, pos: int, end: int, server_side: bool, limits: DecoderLimits
) -> Packet:
    if pos == end:
        # Sections 3.14.2.1 and 3.15.2.1: an empty body is success without properties.
        return Disconnect() if ptype == _T.DISCONNECT else Auth()
    code = data[pos]
    pos += 1
    allowed = DISCONNECT_REASONS if ptype == _T.DISCONNECT else AUTH_REASONS
    if code not in allowed:
        raise malformed(f"{PacketType(ptype).name} reason code 0x{code:02X}")
    props = None
    if pos < end:
        props, pos = decode_properties(data, pos, end, ptype, limits)
        _expect_end(pos, end, PacketType(ptype).name)
    if ptype == _T.DISCONNECT:
        if not server_side and props is not None and props.session_expiry_interval is not None:
            raise protocol_error("session expiry interval in a server DISCONNECT")  # [MQTT-3.14.2-2]
        return Disconnect(code, props)
    if props is None or props.authentication_method is None:
        raise protocol_error("AUTH without an authentication method")  # section 3.15.2.2.2
    return Auth(code, props)


class StreamDecoder:
    """Turn a byte stream into packets: `feed(data)` returns every complete packet.

    Server side (the default) expects CONNECT first, then decodes by the protocol level
    that CONNECT announced; `protocol_level` is set as soon as CONNECT's level byte is
    read, even when the rest of CONNECT is refused, so the refusal can be encoded in the
    client's version (it stays None for an unsupported version: answer in 3.1.1, return
    code 1). Client side needs `protocol_level` and expects CONNACK (or AUTH) first.

    Memory stays bounded: the size of a packet is checked against `max_packet_size`
    from its fixed header alone, before its body is buffered (PACKET_TOO_LARGE), only
    the unfinished tail is kept between calls, and `limits` caps what a single packet may
    allocate (`limits.max_connect_size` bounds the first packet, before anyone is
    authenticated). After a ProtocolError the decoder is spent and raises it again.

    `accept_pingreq` lets a client-side decoder take PINGREQ, which MQTT reserves for
    clients: a bridge answers one from its remote, as Mosquitto's bridge does.
    """

    __slots__ = ("server_side", "max_packet_size", "protocol_level", "connected", "limits",
                 "accept_pingreq", "_buffer", "_needed", "_error")

    def __init__(
        self,
        server_side: bool = True,
        max_packet_size: int = MAX_VARINT,
        protocol_level: int | None = None,
        *,
        limits: DecoderLimits | None = None,
        accept_pingreq: bool = False,
    ) -> None:
        if not server_side and protocol_level not in (3, 4, 5):
            raise ValueError("a client-side decoder needs protocol_level 3, 4 or 5")
        self.server_side = server_side
        # 0: no limit beyond MQTT's own (the largest remaining length plus its header).
        self.max_packet_size = max_packet_size or MAX_VARINT + 5
        self.protocol_level = protocol_level
        self.connected = False
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self.accept_pingreq = accept_pingreq
        self._buffer = bytearray()
        self._needed = 0
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a packet that has not fully arrived."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet]:
        """Decode every complete packet in the buffer plus `data`; keep the unfinished tail."""
        if self._error is not None:
            raise self._error
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._needed:
                return []
            buf = bytes(self._buffer)
            self._buffer.clear()
        else:
            buf = bytes(data)
        packets: list[Packet] = []
        append = packets.append
        pos = 0
        size = len(buf)
        # Locals for the per-packet loop; refreshed after any packet that may change them.
        connected = self.connected
        level = self.protocol_level or 4
        server_side = self.server_side
        limits = self.limits
        limit = self._size_limit()
        try:
            while pos < size:
                if pos + 1 >= size:
                    self._needed = 2
                    break
                length = buf[pos + 1]
                start = pos + 2
                if length >= 0x80:
                    length &= 0x7F
                    shift = 7
                    while True:
                        if start >= size:
                            length = -1
                            break
                        byte = buf[start]
                        start += 1
                        length |= (byte & 0x7F) << shift
                        if byte < 0x80:
                            if byte == 0:
                                # [MQTT-1.5.5-1]
                                raise malformed("remaining length not minimally encoded")
                            break
                        shift += 7
                        if shift == 28:
                            raise malformed("remaining length longer than four bytes")
                    if length < 0:
                        self._needed = start - pos + 1
                        break
                end = start + length
                if end - pos > limit:
                    raise ProtocolError(
                        ReasonCode.PACKET_TOO_LARGE,
                        f"packet of {end - pos} bytes exceeds the maximum of {limit}",
                    )
                if end > size:
                    self._needed = end - pos
                    break
                first = buf[pos]
                if connected and first & 0xF0 == 0x30:
                    append(decode_publish(first, buf, start, end, level, server_side, limits))
                else:
                    append(self._decode_other(first, buf, start, end))
                    connected = self.connected
                    level = self.protocol_level or 4
                    limit = self._size_limit()
                pos = end
        except ProtocolError as error:
            error.packets = packets
            self._error = error
            self._buffer.clear()
            raise
        if pos < size:
            self._buffer += buf[pos:] if pos else buf
        return packets

    def _size_limit(self) -> int:
        if self.connected:
            return self.max_packet_size
        # An unauthenticated peer gets far less room than a connected one.
        return min(self.max_packet_size, self.limits.max_connect_size)

    def _decode_other(self, first: int, data: bytes, pos: int, end: int) -> Packet:
        ptype = first >> 4
        flags = first & 0x0F
        if self.server_side and not self.connected and ptype != _T.CONNECT:
            raise protocol_error("first packet is not CONNECT")  # [MQTT-3.1.0-1]
        level = self.protocol_level or 4
        if ptype == 0 or (ptype == _T.AUTH and level < 5):
            raise malformed(f"reserved packet type {ptype}")
        required = _REQUIRED_FLAGS[ptype]
        if required is not None and flags != required and not (
            # MQTT 3.1 gave PUBREL, SUBSCRIBE and UNSUBSCRIBE a DUP flag, set on a resend.
            level == 3 and required == 2 and flags == 0x0A
        ):
            raise malformed(f"{PacketType(ptype).name} with flags 0b{flags:04b}")  # [MQTT-2.1.3-1]
        if self.server_side:
            if ptype in _SERVER_ONLY:
                raise protocol_error(f"{PacketType(ptype).name} sent to a server")
            if not self.connected:
                packet = _decode_connect(self, data, pos, end)
                self.connected = True
                return packet
            if ptype == _T.CONNECT:
                raise protocol_error("second CONNECT")  # [MQTT-3.1.0-2]
        else:
            if ptype in _CLIENT_ONLY and not (ptype == _T.PINGREQ and self.accept_pingreq):
                raise protocol_error(f"{PacketType(ptype).name} sent to a client")
            if ptype == _T.CONNACK:
                if self.connected:
                    raise protocol_error("second CONNACK")
                connack = _decode_connack(data, pos, end, level, self.limits)
                self.connected = True
                return connack
            if not self.connected and ptype != _T.AUTH:
                raise protocol_error("first packet from the server is not CONNACK")  # [MQTT-3.2.0-1]
        limits = self.limits
        if ptype == _T.PUBLISH:
            return decode_publish(first, data, pos, end, level, self.server_side, limits)
        if ptype in _PUB_RESPONSES:
            return _decode_pub_response(ptype, data, pos, end, level, self.server_side, limits)
        if ptype == _T.SUBSCRIBE:
            return _decode_subscribe(data, pos, end, level, limits)
        if ptype == _T.UNSUBSCRIBE:
            return _decode_unsubscribe(data, pos, end, level, limits)
        if ptype == _T.SUBACK or ptype == _T.UNSUBACK:
            return _decode_ack_list(ptype, data, pos, end, level, limits)
        if ptype == _T.PINGREQ or ptype == _T.PINGRESP:
            _expect_end(pos, end, PacketType(ptype).name)
            return Pingreq() if ptype == _T.PINGREQ else Pingresp()
        if level < 5:
            _expect_end(pos, end, "DISCONNECT")
            return Disconnect()
        return _decode_disconnect_or_auth(ptype, data, pos, end, self.server_side, limits)
