"""An application message inside the broker and its encoded outgoing forms."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.mqtt.encoder import encode_publish
from broker.mqtt.packets import PacketType
from broker.mqtt.properties import Properties, encode_properties, encode_property_list
from broker.mqtt.wire import encode_varint

if TYPE_CHECKING:
    from broker.engine.session import Session

_PUBLISH = PacketType.PUBLISH

FormKey = tuple[bool, int, bool, int, tuple[int, ...], int]


class Message:
    """One published message, shared by every subscriber it goes to.

    `topic` includes the publisher's mountpoint. `properties` holds only what is forwarded
    unchanged (payload format, content type, response topic, correlation data, user
    properties); the expiry lives in `expiry_at` (monotonic seconds) so it can be counted
    down [MQTT-3.3.2-6], and subscription identifiers are added per subscriber.
    """

    __slots__ = ("topic", "payload", "qos", "retain", "properties", "expiry_at", "origin",
                 "_forms", "_topic_bytes", "_forwarded")

    def __init__(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: Properties | None = None,
        expiry_at: float | None = None,
        origin: Session | None = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.expiry_at = expiry_at
        self.origin = origin
        self._forms: dict[int | FormKey, bytes] | None = None
        self._topic_bytes: bytes | None = None
        self._forwarded: bytes | None = None

    def remaining(self, now: float) -> int:
        """Whole seconds left before expiry, -1 when it never expires, 0 when expired."""
        if self.expiry_at is None:
            return -1
        left = self.expiry_at - now
        if left <= 0:
            return 0
        return max(1, int(left + 0.5))

    def size(self) -> int:
        return len(self.topic) + len(self.payload)

    def drop_forms(self) -> None:
        """Forget encoded forms (a retained message may outlive its burst of deliveries)."""
        self._forms = None

    def outgoing_properties(
        self, sub_ids: tuple[int, ...], remaining: int, topic_alias: int | None = None
    ) -> bytes:
        """The MQTT 5 property section for one outgoing form.

        In Mosquitto's order: what is per subscriber, the publisher's properties in the
        order they came, then the expiry left.
        """
        src = self.properties
        if src is None and not sub_ids and remaining < 0:
            # The common MQTT 5 forms: no properties, or a topic alias alone.
            return b"" if topic_alias is None else _alias_only(topic_alias)
        parts: list[bytes] = []
        if sub_ids or topic_alias is not None:
            parts.append(encode_property_list(
                Properties(subscription_identifiers=list(sub_ids) or None, topic_alias=topic_alias), _PUBLISH))
        if src is not None:
            forwarded = self._forwarded
            if forwarded is None:
                forwarded = self._forwarded = encode_property_list(src, _PUBLISH)
            parts.append(forwarded)
        if remaining > 0:
            parts.append(encode_property_list(Properties(message_expiry_interval=remaining), _PUBLISH))
        body = b"".join(parts)
        return encode_varint(len(body)) + body

    def topic_bytes(self) -> bytes:
        tb = self._topic_bytes
        if tb is None:
            tb = self._topic_bytes = self.topic.encode("utf-8")
        return tb

    def form(
        self, v5: bool, qos: int, retain: bool, strip: int, sub_ids: tuple[int, ...],
        now: float,
    ) -> bytes | None:
        """The encoded PUBLISH for one outgoing form, packet id 0; None once expired.

        Every subscriber receiving the same form shares these bytes; QoS 1/2 senders patch
        their packet id into a copy at `publish_packet_id_offset`. `now` matters only for
        messages with an expiry.
        """
        remaining = -1
        if self.expiry_at is not None and v5:
            remaining = self.remaining(now)
            if remaining == 0:
                return None
        elif self.expiry_at is not None and self.expiry_at <= now:
            return None
        key: int | FormKey
        if v5 and (sub_ids or remaining >= 0) or strip:
            key = (v5, qos, retain, strip, sub_ids if v5 else (), remaining)
        else:
            # The common forms get a small int key: no tuple per subscriber.
            key = qos | (4 if retain else 0) | (8 if v5 else 0)
        forms = self._forms
        if forms is None:
            forms = self._forms = {}
        else:
            data = forms.get(key)
            if data is not None:
                return data
        topic = self.topic_bytes()
        if strip:
            topic = topic[strip:]
        props = self.outgoing_properties(sub_ids, remaining) if v5 else b""
        data = forms[key] = encode_publish(
            topic, self.payload, qos, retain, False, 0, props, 5 if v5 else 4
        )
        return data


_ALIAS_ONLY: dict[int, bytes] = {}


def _alias_only(alias: int) -> bytes:
    """The property section holding just a topic alias (identifier 0x23, two bytes)."""
    section = _ALIAS_ONLY.get(alias)
    if section is None:
        section = _ALIAS_ONLY[alias] = encode_properties(Properties(topic_alias=alias), _PUBLISH)
    return section


def message_from_properties(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    props: Properties | None,
    now: float,
    origin: Session | None,
) -> Message:
    """Build a Message from an incoming PUBLISH's or will's properties."""
    expiry_at = None
    fwd = None
    if props is not None:
        if props.message_expiry_interval is not None:
            expiry_at = now + props.message_expiry_interval
        if (
            props.payload_format_indicator is not None
            or props.content_type is not None
            or props.response_topic is not None
            or props.correlation_data is not None
            or props.user_properties is not None
        ):
            fwd = Properties(
                payload_format_indicator=props.payload_format_indicator,
                content_type=props.content_type,
                response_topic=props.response_topic,
                correlation_data=props.correlation_data,
                user_properties=props.user_properties,
                order=props.order,
            )
    return Message(topic, payload, qos, retain, fwd, expiry_at, origin)
