"""MQTT control packets as small slotted classes, shared by MQTT 3.1, 3.1.1 and 5.0.

Packets are plain containers: the decoder validates what arrives, the encoder trusts what
the broker builds. Fields a version lacks (properties, reason codes before 5.0) keep their
defaults when decoded and are dropped when encoded.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from broker.mqtt.properties import Properties


class PacketType(IntEnum):
    """Control packet types from the fixed header; WILL tags the will's property set."""

    WILL = 0
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class _Record:
    """Field-wise equality and a readable repr over `_fields`."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    __hash__ = None  # type: ignore[assignment]  # mutable: the engine fills in aliased topics

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({fields})"


class Packet(_Record):
    """Base class of every control packet."""

    __slots__ = ()
    packet_type: ClassVar[PacketType]


class Will(_Record):
    """The will message carried in CONNECT."""

    __slots__ = ("topic", "payload", "qos", "retain", "properties")
    _fields = __slots__

    def __init__(
        self,
        topic: str,
        payload: bytes = b"",
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties


class Connect(Packet):
    """CONNECT; `protocol_level` is 3 (MQTT 3.1, "MQIsdp"), 4 (3.1.1) or 5. `bridge` is
    Mosquitto's bridge bit (0x80 on a 3.1 or 3.1.1 protocol level): the client is a
    bridge that wants its own messages kept from it and retain flags as published."""

    __slots__ = (
        "protocol_level", "clean_start", "keep_alive", "client_id", "username", "password",
        "will", "properties", "bridge",
    )
    _fields = __slots__
    packet_type = PacketType.CONNECT

    def __init__(
        self,
        protocol_level: int = 4,
        clean_start: bool = True,
        keep_alive: int = 60,
        client_id: str = "",
        username: str | None = None,
        password: bytes | None = None,
        will: Will | None = None,
        properties: Properties | None = None,
        bridge: bool = False,
    ) -> None:
        self.protocol_level = protocol_level
        self.clean_start = clean_start
        self.keep_alive = keep_alive
        self.client_id = client_id
        self.username = username
        self.password = password
        self.will = will
        self.properties = properties
        self.bridge = bridge


class Connack(Packet):
    """CONNACK; `reason_code` is an MQTT 5 reason code, or a 3.1.1 return code when
    decoded from a 3.1.1 server (the encoder maps 5.0 codes down for 3.1.1)."""

    __slots__ = ("session_present", "reason_code", "properties")
    _fields = __slots__
    packet_type = PacketType.CONNACK

    def __init__(
        self,
        session_present: bool = False,
        reason_code: int = 0,
        properties: Properties | None = None,
    ) -> None:
        self.session_present = session_present
        self.reason_code = reason_code
        self.properties = properties


class Publish(Packet):
    """PUBLISH; `topic` is "" only when an MQTT 5 topic alias stands for it, and
    `packet_id` is None exactly when `qos` is 0."""

    __slots__ = ("topic", "payload", "qos", "retain", "dup", "packet_id", "properties")
    _fields = __slots__
    packet_type = PacketType.PUBLISH

    def __init__(
        self,
        topic: str,
        payload: bytes = b"",
        qos: int = 0,
        retain: bool = False,
        dup: bool = False,
        packet_id: int | None = None,
        properties: Properties | None = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packet_id = packet_id
        self.properties = properties


class _PubResponse(Packet):
    __slots__ = ("packet_id", "reason_code", "properties")
    _fields = __slots__

    def __init__(
        self, packet_id: int, reason_code: int = 0, properties: Properties | None = None
    ) -> None:
        self.packet_id = packet_id
        self.reason_code = reason_code
        self.properties = properties


class Puback(_PubResponse):
    """PUBACK (QoS 1 acknowledgement)."""

    __slots__ = ()
    packet_type = PacketType.PUBACK


class Pubrec(_PubResponse):
    """PUBREC (QoS 2, step 1)."""

    __slots__ = ()
    packet_type = PacketType.PUBREC


class Pubrel(_PubResponse):
    """PUBREL (QoS 2, step 2)."""

    __slots__ = ()
    packet_type = PacketType.PUBREL


class Pubcomp(_PubResponse):
    """PUBCOMP (QoS 2, step 3)."""

    __slots__ = ()
    packet_type = PacketType.PUBCOMP


class Subscription(_Record):
    """One topic filter of a SUBSCRIBE with its options (the last three are MQTT 5 only).

    The decoder checks the filter is well-formed UTF-8 but leaves wildcard placement to
    `validate_topic_filter`, so the engine can refuse one filter (SUBACK 0x8F) and keep
    the others.
    """

    __slots__ = ("topic_filter", "qos", "no_local", "retain_as_published", "retain_handling")
    _fields = __slots__

    def __init__(
        self,
        topic_filter: str,
        qos: int = 0,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
    ) -> None:
        self.topic_filter = topic_filter
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling


class Subscribe(Packet):
    """SUBSCRIBE."""

    __slots__ = ("packet_id", "subscriptions", "properties")
    _fields = __slots__
    packet_type = PacketType.SUBSCRIBE

    def __init__(
        self,
        packet_id: int,
        subscriptions: list[Subscription],
        properties: Properties | None = None,
    ) -> None:
        self.packet_id = packet_id
        self.subscriptions = subscriptions
        self.properties = properties


class Suback(Packet):
    """SUBACK; one reason code (granted QoS or failure) per requested filter."""

    __slots__ = ("packet_id", "reason_codes", "properties")
    _fields = __slots__
    packet_type = PacketType.SUBACK

    def __init__(
        self, packet_id: int, reason_codes: list[int], properties: Properties | None = None
    ) -> None:
        self.packet_id = packet_id
        self.reason_codes = reason_codes
        self.properties = properties


class Unsubscribe(Packet):
    """UNSUBSCRIBE."""

    __slots__ = ("packet_id", "topic_filters", "properties")
    _fields = __slots__
    packet_type = PacketType.UNSUBSCRIBE

    def __init__(
        self, packet_id: int, topic_filters: list[str], properties: Properties | None = None
    ) -> None:
        self.packet_id = packet_id
        self.topic_filters = topic_filters
        self.properties = properties


class Unsuback(Packet):
    """UNSUBACK; MQTT 3.1.1 carries no reason codes, so they decode as an empty list."""

    __slots__ = ("packet_id", "reason_codes", "properties")
    _fields = __slots__
    packet_type = PacketType.UNSUBACK

    def __init__(
        self,
        packet_id: int,
        reason_codes: list[int] | None = None,
        properties: Properties | None = None,
    ) -> None:
        self.packet_id = packet_id
        self.reason_codes: list[int] = [] if reason_codes is None else reason_codes
        self.properties = properties


class Pingreq(Packet):
    """PINGREQ."""

    __slots__ = ()
    packet_type = PacketType.PINGREQ


class Pingresp(Packet):
    """PINGRESP."""

    __slots__ = ()
    packet_type = PacketType.PINGRESP


class Disconnect(Packet):
    """DISCONNECT; reason code and properties exist in MQTT 5 only."""

    __slots__ = ("reason_code", "properties")
    _fields = __slots__
    packet_type = PacketType.DISCONNECT

    def __init__(self, reason_code: int = 0, properties: Properties | None = None) -> None:
        self.reason_code = reason_code
        self.properties = properties


class Auth(Packet):
    """AUTH (MQTT 5 enhanced authentication)."""

    __slots__ = ("reason_code", "properties")
    _fields = __slots__
    packet_type = PacketType.AUTH

    def __init__(self, reason_code: int = 0, properties: Properties | None = None) -> None:
        self.reason_code = reason_code
        self.properties = properties


__all__ = [
    "Auth", "Connack", "Connect", "Disconnect", "Packet", "PacketType", "Pingreq", "Pingresp",
    "Puback", "Pubcomp", "Publish", "Pubrec", "Pubrel", "Suback", "Subscribe", "Subscription",
    "Unsuback", "Unsubscribe", "Will",
]
