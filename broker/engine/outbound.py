"""The outbound QoS flows of one connection: PUBLISH out, its acknowledgements, resume.

Functions of the connection rather than methods, so that `connection.py` keeps the
inbound side and these read as one flow: `send_publish` delivers or queues, `pump` moves
queued messages into free in-flight slots, `resume` resends what was in flight after a
reconnection, and PUBACK / PUBREC / PUBCOMP free the slots (sections 4.3.2 and 4.3.3).
The broker's routing loop calls `send_publish` directly: one plain function call per
delivery, as the method it replaces was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.engine import durability
from broker.engine.interfaces import may_still_publish
from broker.engine.queues import DROP_QUEUE_FULL, DROP_SLOW_CLIENT, DROP_TOO_LARGE, Outgoing
from broker.engine.states import CONNECTED
from broker.mqtt.encoder import encode, encode_ack, encode_publish, publish_packet_id_offset
from broker.mqtt.packets import Puback, Pubcomp, Pubrec, Pubrel
from broker.mqtt.reason_codes import ReasonCode

if TYPE_CHECKING:
    from broker.engine.connection import Connection
    from broker.engine.message import Message
    from broker.engine.retained import Slot
    from broker.engine.session import Session
    from broker.engine.topics import SubOptions


def _payload_bytes(inflight: dict[int, Outgoing]) -> int:
    """Payload bytes of the QoS 1/2 messages in flight, for max_inflight_bytes (only summed
    when that option is set)."""
    return sum(len(out.message.payload) for out in inflight.values())


def send_publish(
    conn: Connection, message: Message, qos: int, retain: bool, sub_ids: tuple[int, ...]
) -> Outgoing | None:
    """Deliver one message at `qos`, or queue it behind earlier ones.

    Returns the QoS 1/2 delivery when it was sent or queued (for the journal)."""
    broker = conn.broker
    if qos == 0:
        if conn.shedding:
            broker.stats.drop(DROP_SLOW_CLIENT)
            return None
        if conn.backlogged and conn.link.buffered() > broker.config.max_write_buffer:
            conn.shedding = True
            conn.overflowed(DROP_SLOW_CLIENT)
            return None
        if conn.alias_out_max:
            data = _aliased(conn, message, 0, retain, sub_ids)
        else:
            data = message.form(conn.v5, 0, retain, conn.strip, sub_ids,
                                broker.now() if message.expiry_at is not None else 0.0)
        if data is None:
            return None
        if len(data) > conn.max_out:
            broker.stats.drop(DROP_TOO_LARGE)  # [MQTT-3.1.2-25]
            return None
        conn.link.write(data)
        broker.stats.messages_sent += 1
        return None
    session = conn.session
    assert session is not None
    out = Outgoing(message, qos, retain, sub_ids)
    queue = session.queue
    inflight = session.inflight
    if (
        (queue is not None and queue.items)
        or (inflight is not None and len(inflight) >= conn.send_quota)
        or (conn.backlogged and conn.link.buffered() > broker.config.max_write_buffer)
        or (inflight and broker.config.max_inflight_bytes
            and _payload_bytes(inflight) >= broker.config.max_inflight_bytes)
    ):
        # Waits for a free slot or for the socket to drain, within the same limits as
        # an offline session's queue.
        config = broker.config
        if not session.enqueue(out, config.max_queued_messages, config.max_queued_bytes):
            conn.overflowed(DROP_QUEUE_FULL)
            return None
        return out
    return out if _send_new(conn, out) else None


def _send_new(conn: Connection, out: Outgoing) -> bool:
    """Send into a free in-flight slot; False when the message was discarded instead."""
    session = conn.session
    assert session is not None
    inflight = session.inflight
    if inflight is None:
        inflight = session.inflight = {}
    broker = conn.broker
    message = out.message
    if conn.alias_out_max:
        data = _aliased(conn, message, out.qos, out.retain, out.sub_ids)
    else:
        data = message.form(conn.v5, out.qos, out.retain, conn.strip, out.sub_ids,
                            broker.now() if message.expiry_at is not None else 0.0)
    if data is None or len(data) > conn.max_out:
        if data is not None:
            broker.stats.drop(DROP_TOO_LARGE)  # Discarded as if delivered [MQTT-3.1.2-25].
        # else expired while queued [MQTT-3.3.2-5]
        # Mosquitto numbers a message when it is queued for the client, so a dropped one
        # still uses up its packet identifier; its clients and tests count on that.
        session.next_packet_id()
        if out.jid and broker.journal is not None:
            durability.delivery_done(broker.journal, session, out)
        return False
    pid = session.next_packet_id()
    out.packet_id = pid
    inflight[pid] = out
    buf = bytearray(data)
    offset = publish_packet_id_offset(data)
    buf[offset] = pid >> 8
    buf[offset + 1] = pid & 0xFF
    conn.link.write(buf)
    broker.stats.messages_sent += 1
    if out.jid and broker.journal is not None:
        durability.delivery_sent(broker.journal, session, out)
    return True


def _aliased(
    conn: Connection, message: Message, qos: int, retain: bool, sub_ids: tuple[int, ...]
) -> bytes | None:
    """Encode for a client that accepts topic aliases: the topic goes once per alias."""
    now = conn.broker.now()
    remaining = message.remaining(now)
    if remaining == 0:
        return None
    topic = message.topic[len(conn.principal.mountpoint) if conn.principal else 0:]
    aliases = conn.alias_out
    if aliases is None:
        aliases = conn.alias_out = {}
    alias = aliases.get(topic)
    topic_bytes = b""
    if alias is None:
        topic_bytes = topic.encode("utf-8")
        if len(aliases) < conn.alias_out_max:
            alias = aliases[topic] = len(aliases) + 1
    props = message.outgoing_properties(sub_ids, remaining, alias)
    data = encode_publish(topic_bytes, message.payload, qos, retain, False, 0, props, 5)
    if topic_bytes and alias is not None and len(data) > conn.max_out:
        # The caller drops a packet too large for the client [MQTT-3.1.2-25]: the client
        # never learns this alias, so later messages must not use it. Without the alias
        # property the packet may still fit.
        del aliases[topic]
        props = message.outgoing_properties(sub_ids, remaining, None)
        data = encode_publish(topic_bytes, message.payload, qos, retain, False, 0, props, 5)
    return data


def resume(conn: Connection) -> None:
    """Resend what was in flight on a resumed session, then drain its queue.

    Unacknowledged PUBLISH packets go again with DUP set and PUBRELs are repeated, in
    their original order [MQTT-4.4.0-1].
    """
    session = conn.session
    assert session is not None
    inflight = session.inflight
    if inflight:
        now = conn.broker.now()
        for pid, out in list(inflight.items()):
            if out.released:
                conn.link.write(encode_ack(0x62, pid))
                continue
            data = out.message.form(conn.v5, out.qos, out.retain, conn.strip,
                                    out.sub_ids, now)
            if data is None:
                # Expired after it was sent: resend anyway, with no time left.
                data = out.message.form(conn.v5, out.qos, out.retain, conn.strip,
                                        out.sub_ids, out.message.expiry_at or now)
                if data is None:
                    del inflight[pid]
                    journal = conn.broker.journal
                    if out.jid and journal is not None:
                        durability.delivery_done(journal, session, out)
                    continue
            buf = bytearray(data)
            buf[0] |= 0x08  # DUP [MQTT-3.3.1-1]
            offset = publish_packet_id_offset(data)
            buf[offset] = pid >> 8
            buf[offset + 1] = pid & 0xFF
            conn.link.write(buf)
    pump(conn)


def pump(conn: Connection) -> None:
    """Move queued messages into free in-flight slots."""
    session = conn.session
    if session is None or conn.state != CONNECTED:
        return
    queue = session.queue
    if queue:
        broker = conn.broker
        now = broker.now()
        quota = conn.send_quota
        byte_limit = broker.config.max_inflight_bytes
        while queue and session.inflight_count() < quota:
            if byte_limit and session.inflight and _payload_bytes(session.inflight) >= byte_limit:
                break
            out = queue.pop(now)
            if out is None:
                break
            _send_new(conn, out)
    if conn.retained_pending is not None:
        pump_retained(conn)


def pump_retained(conn: Connection) -> None:
    """Send the retained messages new subscriptions matched, as fast as the client takes
    them: a new '#' subscriber among 100,000 retained messages gets every one, in order,
    instead of what fit its buffer (the rest dropped as for a slow client)."""
    pending = conn.retained_pending
    session = conn.session
    if pending is None or session is None:
        return
    while pending:
        if conn.backlogged or conn.state != CONNECTED:
            return  # set_backlogged(False) or an acknowledgement (pump) goes on
        queue = session.queue
        inflight = session.inflight
        if (queue is not None and queue.items) or (inflight is not None and len(inflight) >= conn.send_quota):
            return
        slot, message, opts = pending.popleft()
        delivery = retained_delivery(conn, slot, message, opts)
        if delivery is not None:
            send_publish(conn, message, delivery[0], True, delivery[1])  # RETAIN 1 [MQTT-3.3.1-8]
    conn.retained_pending = None


def retained_delivery(conn: Connection, slot: Slot, message: Message,
                      opts: SubOptions) -> tuple[int, tuple[int, ...]] | None:
    """(QoS, subscription ids) for sending a retained message a subscription matched at
    `slot`, or None when it should not go now: it was replaced or cleared since (the
    subscriber got the new one as it was published), it expired, or the ACLs no longer
    let it through."""
    if slot.message is not message:
        return None
    broker = conn.broker
    retained = broker.retained
    if message.expiry_at is not None and message.expiry_at <= broker.now():
        retained.clear(message.topic)
        return None
    principal = conn.principal
    if opts.filtered and principal is not None:
        topic = message.topic[len(principal.mountpoint):]
        if not broker.authorizer.allow_delivery(principal, topic, message.qos):
            return None
    publisher = None if broker.allow_all else retained.publisher(message)
    if publisher is not None:
        # Only while its publisher would still be allowed to publish it: a retained message
        # must not outlive the right that put it there. (The broker's own, $SYS, have none.)
        topic = message.topic[len(publisher.mountpoint):]
        if not may_still_publish(broker.authorizer, publisher, topic, message.qos):
            broker.stats.denied += 1
            return None
    qos = opts.qos if broker.config.upgrade_outgoing_qos else min(message.qos, opts.qos)
    return qos, ((opts.sub_id,) if opts.sub_id is not None else ())


def queue_retained(conn: Connection) -> list[tuple[Session, Outgoing]]:
    """A persistent session's connection ended with retained messages still to send: the
    QoS 1/2 ones go into its queue (as any message for an offline session), in order, and
    are returned for the journal. QoS 0 ones are not kept for an offline session."""
    pending = conn.retained_pending
    conn.retained_pending = None
    session = conn.session
    queued: list[tuple[Session, Outgoing]] = []
    if not pending or session is None:
        return queued
    broker = conn.broker
    config = broker.config
    for slot, message, opts in pending:
        delivery = retained_delivery(conn, slot, message, opts)
        if delivery is None or not delivery[0]:
            continue
        out = Outgoing(message, delivery[0], True, delivery[1])
        if not session.enqueue(out, config.max_queued_messages, config.max_queued_bytes):
            broker.stats.drop(DROP_QUEUE_FULL)
            continue
        queued.append((session, out))
    return queued


def on_puback(conn: Connection, packet: Puback) -> None:
    _acknowledged(conn, packet.packet_id, 1)


def on_pubrec(conn: Connection, packet: Pubrec) -> None:
    session = conn.session
    assert session is not None
    inflight = session.inflight
    out = inflight.get(packet.packet_id) if inflight is not None else None
    if out is None or out.qos != 2:
        if conn.v5:
            conn.link.write(
                encode(Pubrel(packet.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND), conn.level)
            )
        else:
            conn.link.write(encode_ack(0x62, packet.packet_id))
        return
    if packet.reason_code >= 0x80:
        # A refusing PUBREC ends the exchange (section 4.3.3); the slot is free again.
        assert inflight is not None
        del inflight[packet.packet_id]
        if out.jid and conn.broker.journal is not None:
            durability.delivery_done(conn.broker.journal, session, out)
        pump(conn)
        return
    out.released = True
    if out.jid and conn.broker.journal is not None:
        durability.delivery_sent(conn.broker.journal, session, out)
    conn.link.write(encode_ack(0x62, packet.packet_id))


def on_pubcomp(conn: Connection, packet: Pubcomp) -> None:
    _acknowledged(conn, packet.packet_id, 2)


def _acknowledged(conn: Connection, packet_id: int, qos: int) -> None:
    """The end of a QoS 1 (PUBACK) or QoS 2 (PUBCOMP) delivery: free its slot, tell the
    journal, and send what waited for the slot."""
    session = conn.session
    assert session is not None
    inflight = session.inflight
    if inflight is not None:
        out = inflight.get(packet_id)
        if out is not None and out.qos == qos:
            del inflight[packet_id]
            if out.jid and conn.broker.journal is not None:
                durability.delivery_done(conn.broker.journal, session, out)
            queue = session.queue
            if queue is not None and queue.items:
                pump(conn)
