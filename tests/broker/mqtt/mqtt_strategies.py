"""Hypothesis strategies for every MQTT packet in MQTT 3.1, 3.1.1 and 5.0, valid by construction."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from broker.mqtt import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
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
    allowed_properties,
)
from broker.mqtt.reason_codes import (
    AUTH_REASONS,
    CONNACK_REASONS,
    DISCONNECT_REASONS,
    PUBACK_REASONS,
    PUBREL_REASONS,
    SUBACK_REASONS,
    SUBACK_REASONS_311,
    UNSUBACK_REASONS,
)

# MQTT strings: any Unicode scalar value but U+0000; surrogates cannot be encoded.
text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=12,
)
topic_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00+#"),
    min_size=1,
    max_size=12,
)
topic_filters = st.one_of(
    st.sampled_from(["a/+", "#", "+/+/#", "$share/g/a/#", "$SYS/#", "a//b"]), topic_names
)
binary = st.binary(max_size=12)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
flag = st.integers(0, 1)
packet_ids = st.integers(1, 0xFFFF)

PROPERTY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "payload_format_indicator": flag,
    "message_expiry_interval": u32,
    "content_type": text,
    "response_topic": topic_names,
    "correlation_data": binary,
    "subscription_identifiers": st.lists(st.integers(1, 268_435_455), min_size=1, max_size=3),
    "session_expiry_interval": u32,
    "assigned_client_identifier": text,
    "server_keep_alive": u16,
    "authentication_method": text,
    "authentication_data": binary,
    "request_problem_information": flag,
    "will_delay_interval": u32,
    "request_response_information": flag,
    "response_information": text,
    "server_reference": text,
    "reason_string": text,
    "receive_maximum": st.integers(1, 0xFFFF),
    "topic_alias_maximum": u16,
    "topic_alias": st.integers(1, 0xFFFF),
    "maximum_qos": flag,
    "retain_available": flag,
    "user_properties": st.lists(st.tuples(text, text), min_size=1, max_size=3),
    "maximum_packet_size": st.integers(1, 0xFFFF_FFFF),
    "wildcard_subscription_available": flag,
    "subscription_identifier_available": flag,
    "shared_subscription_available": flag,
}


def _to_properties(values: dict[str, Any]) -> Properties | None:
    # An empty section decodes to None, so generate None rather than Properties().
    return Properties(**values) if values else None


def properties(
    packet_type: PacketType, exclude: frozenset[str] = frozenset()
) -> st.SearchStrategy[Properties | None]:
    """Any valid property set for `packet_type`, or None."""
    names = sorted(allowed_properties(packet_type) - exclude)
    optional = {name: PROPERTY_VALUES[name] for name in names}
    return st.fixed_dictionaries({}, optional=optional).map(_to_properties)


def _props(level: int, packet_type: PacketType, **kw: Any) -> st.SearchStrategy[Properties | None]:
    return properties(packet_type, **kw) if level >= 5 else st.none()


@st.composite
def connects(draw: st.DrawFn, level: int) -> Connect:
    clean_start = draw(st.booleans())
    client_id = draw(text)
    if not client_id and (level == 3 or (level == 4 and not clean_start)):
        client_id = "c"
    username = draw(st.none() | text)
    password = draw(st.none() | binary)
    if level < 5 and password is not None and username is None:
        username = "u"
    will = None
    if draw(st.booleans()):
        will = Will(
            draw(topic_names), draw(binary), draw(st.integers(0, 2)), draw(st.booleans()),
            draw(_props(level, PacketType.WILL)),
        )
    props = draw(_props(level, PacketType.CONNECT))
    if props is not None and props.authentication_data is not None:
        props.authentication_method = props.authentication_method or "m"
    return Connect(level, clean_start, draw(u16), client_id, username, password, will, props)


@st.composite
def connacks(draw: st.DrawFn, level: int) -> Connack:
    codes = st.sampled_from(sorted(CONNACK_REASONS)) if level >= 5 else st.integers(0, 5)
    code = draw(codes)
    session_present = draw(st.booleans()) if code == 0 else False
    return Connack(session_present, code, draw(_props(level, PacketType.CONNACK)))


@st.composite
def publishes(draw: st.DrawFn, level: int, from_server: bool = False) -> Publish:
    qos = draw(st.integers(0, 2))
    exclude = frozenset() if from_server else frozenset({"subscription_identifiers"})
    props = draw(_props(level, PacketType.PUBLISH, exclude=exclude))
    topic = draw(topic_names)
    if props is not None and props.topic_alias is not None and draw(st.booleans()):
        topic = ""
    dup = draw(st.booleans()) if qos else False
    return Publish(topic, draw(binary), qos, draw(st.booleans()), dup,
                   draw(packet_ids) if qos else None, props)


def pub_responses(cls: type[Puback | Pubrec | Pubrel | Pubcomp], level: int) -> st.SearchStrategy[Packet]:
    if level < 5:
        return st.builds(cls, packet_ids)
    reasons = PUBREL_REASONS if cls in (Pubrel, Pubcomp) else PUBACK_REASONS
    return st.builds(cls, packet_ids, st.sampled_from(sorted(reasons)),
                     properties(cls.packet_type))


@st.composite
def subscriptions(draw: st.DrawFn, level: int) -> Subscription:
    topic_filter = draw(topic_filters)
    qos = draw(st.integers(0, 2))
    if level < 5:
        return Subscription(topic_filter, qos)
    no_local = draw(st.booleans()) and not topic_filter.startswith("$share/")
    return Subscription(topic_filter, qos, no_local, draw(st.booleans()), draw(st.integers(0, 2)))


def subscribes(level: int) -> st.SearchStrategy[Packet]:
    props = _props(level, PacketType.SUBSCRIBE).map(_single_subscription_identifier)
    return st.builds(Subscribe, packet_ids,
                     st.lists(subscriptions(level), min_size=1, max_size=4), props)


def _single_subscription_identifier(props: Properties | None) -> Properties | None:
    if props is not None and props.subscription_identifiers:
        props.subscription_identifiers = props.subscription_identifiers[:1]
    return props


def subacks(level: int) -> st.SearchStrategy[Packet]:
    reasons = SUBACK_REASONS if level >= 5 else SUBACK_REASONS_311
    return st.builds(Suback, packet_ids,
                     st.lists(st.sampled_from(sorted(reasons)), min_size=1, max_size=4),
                     _props(level, PacketType.SUBACK))


def unsubscribes(level: int) -> st.SearchStrategy[Packet]:
    return st.builds(Unsubscribe, packet_ids, st.lists(topic_filters, min_size=1, max_size=4),
                     _props(level, PacketType.UNSUBSCRIBE))


def unsubacks(level: int) -> st.SearchStrategy[Packet]:
    if level < 5:
        return st.builds(Unsuback, packet_ids)
    return st.builds(Unsuback, packet_ids,
                     st.lists(st.sampled_from(sorted(UNSUBACK_REASONS)), min_size=1, max_size=4),
                     properties(PacketType.UNSUBACK))


def disconnects(level: int, from_server: bool = False) -> st.SearchStrategy[Packet]:
    if level < 5:
        return st.just(Disconnect())
    exclude = frozenset({"session_expiry_interval"}) if from_server else frozenset()
    return st.builds(Disconnect, st.sampled_from(sorted(DISCONNECT_REASONS)),
                     properties(PacketType.DISCONNECT, exclude=exclude))


@st.composite
def auths(draw: st.DrawFn) -> Auth:
    if draw(st.booleans()):
        return Auth()
    props = draw(properties(PacketType.AUTH)) or Properties()
    props.authentication_method = props.authentication_method or "SCRAM-SHA-256"
    return Auth(draw(st.sampled_from(sorted(AUTH_REASONS))), props)


def packets_from_client(level: int) -> st.SearchStrategy[Packet]:
    """Anything a client may send once connected."""
    choices = [
        publishes(level), pub_responses(Puback, level), pub_responses(Pubrec, level),
        pub_responses(Pubrel, level), pub_responses(Pubcomp, level), subscribes(level),
        unsubscribes(level), st.just(Pingreq()), disconnects(level),
    ]
    if level >= 5:
        choices.append(auths())
    return st.one_of(choices)


def packets_from_server(level: int) -> st.SearchStrategy[Packet]:
    """Anything a server may send once the client is connected."""
    choices = [
        publishes(level, from_server=True), pub_responses(Puback, level),
        pub_responses(Pubrec, level), pub_responses(Pubrel, level),
        pub_responses(Pubcomp, level), subacks(level), unsubacks(level), st.just(Pingresp()),
        disconnects(level, from_server=True),
    ]
    if level >= 5:
        choices.append(auths())
    return st.one_of(choices)
