"""SUBSCRIBE and UNSUBSCRIBE handling for one connection."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from broker.engine.interfaces import Action, Decision, may_unsubscribe
from broker.engine.outbound import pump_retained
from broker.engine.topics import SubOptions, check_topic_limits
from broker.mqtt.encoder import encode
from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import Suback, Subscribe, Unsuback, Unsubscribe
from broker.mqtt.reason_codes import ReasonCode
from broker.mqtt.topics import parse_shared, validate_topic_filter

if TYPE_CHECKING:
    from broker.config import BrokerConfig
    from broker.engine.connection import Connection


def _filter_problem(topic_filter: str, config: BrokerConfig) -> int:
    """0 for a filter that may be subscribed, else the SUBACK/UNSUBACK reason code."""
    try:
        validate_topic_filter(topic_filter)
        shared = parse_shared(topic_filter)
    except ProtocolError as error:
        return error.reason_code
    inner = topic_filter if shared is None else shared[1]
    if not check_topic_limits(inner, config.max_topic_length, config.max_topic_levels):
        return ReasonCode.TOPIC_FILTER_INVALID
    return 0


def handle_subscribe(conn: Connection, packet: Subscribe) -> None:
    broker = conn.broker
    config = broker.config
    session = conn.session
    principal = conn.principal
    assert session is not None and principal is not None
    mountpoint = principal.mountpoint
    props = packet.properties
    sub_id = None
    if props is not None and props.subscription_identifiers:
        sub_id = props.subscription_identifiers[0]
    codes: list[int] = []
    retained: list[tuple[str, SubOptions]] = []
    if config.invalid_filter_disconnects and any(
            _filter_problem(sub.topic_filter, config) for sub in packet.subscriptions):
        conn.disconnect(ReasonCode.MALFORMED_PACKET)  # before any of them takes effect
        return
    for sub in packet.subscriptions:
        topic_filter = sub.topic_filter
        problem = _filter_problem(topic_filter, config)
        if problem:
            codes.append(problem)
            continue
        shared = parse_shared(topic_filter)
        inner = topic_filter if shared is None else shared[1]
        if shared is not None and sub.no_local:
            conn.disconnect(ReasonCode.PROTOCOL_ERROR)  # [MQTT-3.8.3-4]
            return
        filtered = False
        if not broker.allow_all:
            decision = broker.authorizer.authorize(
                principal, Action.SUBSCRIBE, topic_filter, sub.qos, False
            )
            if decision is Decision.DENY:
                broker.stats.denied += 1
                codes.append(ReasonCode.NOT_AUTHORIZED)
                continue
            filtered = decision is Decision.ALLOW_FILTERED
            qos = broker.authorizer.granted_qos(principal, topic_filter, sub.qos)
        else:
            qos = sub.qos
        qos = min(qos, config.max_qos)  # [MQTT-3.2.2-10] downgrade to what we offer
        # A bridge must not get its own messages back, and forwards retain flags as they
        # were published (what MQTT 5 bridges ask for explicitly).
        bridge = conn.bridge
        opts = SubOptions(qos, sub.no_local or bridge, sub.retain_as_published or bridge,
                          sub.retain_handling,
                          sub_id, filtered)
        mounted = mountpoint + inner
        new = broker.subscribe(session, topic_filter, shared[0] if shared else None, mounted,
                               opts)
        codes.append(qos)
        # Shared subscriptions never get retained messages (section 4.8.2); retain
        # handling 1 sends them only for a new subscription, 2 never (section 3.3.1.3).
        if shared is None and (sub.retain_handling == 0 or (sub.retain_handling == 1 and new)):
            retained.append((mounted, opts))
    # The SUBACK goes before any retained message it causes [MQTT-3.8.4-1].
    conn.link.write(encode(Suback(packet.packet_id, codes), conn.level))
    if retained and broker.retained.count:
        pending = conn.retained_pending
        if pending is None:
            pending = conn.retained_pending = deque()
        for mounted, opts in retained:
            pending.extend((slot, slot.message, opts) for slot in broker.retained.slots(mounted)
                           if slot.message is not None)
        # Sent as fast as the client reads them, not all into its buffer at once (where
        # what did not fit would be dropped as for a slow client); each one checked as it
        # goes (expiry, ACLs), not when the subscription was made.
        pump_retained(conn)


def handle_unsubscribe(conn: Connection, packet: Unsubscribe) -> None:
    broker = conn.broker
    session = conn.session
    assert session is not None
    codes: list[int] = []
    principal = conn.principal
    config = broker.config
    if config.invalid_filter_disconnects and any(
            _filter_problem(topic_filter, config) for topic_filter in packet.topic_filters):
        conn.disconnect(ReasonCode.MALFORMED_PACKET)
        return
    for topic_filter in packet.topic_filters:
        try:
            validate_topic_filter(topic_filter)
        except ProtocolError as error:
            # Nothing could be subscribed under it: say why rather than 0x11.
            codes.append(error.reason_code)
            continue
        if not (broker.allow_all or principal is None
                or may_unsubscribe(broker.authorizer, principal, topic_filter)):
            codes.append(ReasonCode.NOT_AUTHORIZED)  # the subscription stays
        elif broker.unsubscribe(session, topic_filter):
            codes.append(ReasonCode.SUCCESS)
        else:
            codes.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
    conn.link.write(encode(Unsuback(packet.packet_id, codes), conn.level))
