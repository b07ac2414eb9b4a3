"""Will messages: when they are due and how they are published."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.engine.interfaces import Decision, authorize_publish
from broker.engine.message import message_from_properties
from broker.mqtt.topics import is_share_name

if TYPE_CHECKING:
    from broker.engine.broker import Broker
    from broker.engine.session import Session
    from broker.mqtt.packets import Will


def delay_of(will: Will) -> int:
    """The will delay interval in seconds (MQTT 5; 0 otherwise)."""
    props = will.properties
    if props is None or props.will_delay_interval is None:
        return 0
    return props.will_delay_interval


def publish_will(broker: Broker, session: Session, will: Will) -> None:
    """Publish a will as its client would have, authorization included.

    The will is checked at CONNECT (a will the client may not publish refuses the
    connection, see handshake.py) and again when it is sent, so rights revoked while the
    client was connected apply to it too.
    """
    principal = session.principal
    if not broker.allow_all or will.topic[:1] == "$":
        decision = Decision.DENY if is_share_name(will.topic) else authorize_publish(
            broker.authorizer, principal, will.topic, will.qos, will.retain
        )
        if decision is not Decision.ALLOW:
            broker.stats.denied += 1
            return
    message = message_from_properties(
        principal.mountpoint + will.topic, will.payload, will.qos, will.retain,
        will.properties, broker.now(), session,
    )
    broker.publish(message)
