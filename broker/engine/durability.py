"""What the engine tells the journal: records for sessions, deliveries and retained messages.

Only sessions that outlive their connection (`Session.durable`) and retained messages are
journaled; QoS 0 and clean sessions write nothing.
"""

from __future__ import annotations

import time
from binascii import b2a_base64
from typing import TYPE_CHECKING

from broker.engine import wills
from broker.engine.journal import Journal, message_record, quote, will_record
from broker.engine.retained import RetainedStore
from broker.engine.store import (
    _WILL_PROPERTIES,
    StoredWill,
    _properties_of,
    _store_message,
    principal_record,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from broker.engine.message import Message
    from broker.engine.queues import Outgoing
    from broker.engine.session import Session


def session_changed(journal: Journal, session: Session, mono_now: float) -> None:
    """The session as it is now: principal, expiry, connected or since when not, will."""
    wall_now = time.time()
    disconnected_at = None
    will = None
    if session.conn is None:
        disconnected_at = wall_now - (mono_now - session.disconnected_at)
        w = session.will
        if w is not None:
            due = session.disconnected_at + wills.delay_of(w)
            will = StoredWill(w.topic, w.payload, w.qos, w.retain,
                              _properties_of(w.properties, _WILL_PROPERTIES),
                              wall_now + (due - mono_now))
    attributes = principal_record(session.principal)[2]
    journal.append(["S", session.mountpoint, session.client_id, session.principal.name,
                    attributes, session.protocol_level, session.expiry_interval,
                    disconnected_at, will_record(will)])


def session_ended(journal: Journal, session: Session) -> None:
    journal.append(["E", session.mountpoint, session.client_id])


def deliveries(journal: Journal, message: Message, outs: list[tuple[Session, Outgoing]],
               mono_now: float) -> None:
    """One message queued (or already in flight) for durable sessions: one record."""
    if message.properties is None and message.expiry_at is None:
        # The common record, formatted directly: json.dumps of the lists cost the durable
        # QoS 1 path about a tenth of the broker's time.
        mid = jid = journal.next_id
        parts = []
        for session, out in outs:
            jid += 1
            out.jid = jid
            key = session.journal_key or _key(session)
            sub_ids = ",".join(map(str, out.sub_ids)) if out.sub_ids else ""
            parts.append(f"[{key},{jid},{out.qos},{'true' if out.retain else 'false'},[{sub_ids}],{out.packet_id}]")
        journal.next_id = jid + 1
        payload = b2a_base64(message.payload, newline=False).decode("ascii")
        journal.append_body(f'["D",{mid},{quote(message.topic)},"{payload}",{message.qos},'
                            f'{"true" if message.retain else "false"},null,null,[{",".join(parts)}]]')
        return
    mid = journal.new_id()
    targets = []
    for session, out in outs:
        jid = out.jid = journal.new_id()
        targets.append([session.mountpoint, session.client_id, jid, out.qos, out.retain,
                        list(out.sub_ids), out.packet_id])
    record = message_record(mid, _store_message(message, mono_now, time.time()))
    record[0] = "D"
    record.append(targets)
    journal.append(record)


def _key(session: Session) -> str:
    key = session.journal_key
    if key is None:
        key = session.journal_key = f"{quote(session.mountpoint)},{quote(session.client_id)}"
    return key


def delivery_sent(journal: Journal, session: Session, out: Outgoing) -> None:
    released = 1 if out.released else 0
    journal.append_body(f'["P",{_key(session)},{out.jid},{out.packet_id},{released}]')


def delivery_done(journal: Journal, session: Session, out: Outgoing) -> None:
    journal.append_body(f'["A",{_key(session)},{out.jid}]')


def qos2_received(journal: Journal, session: Session, packet_id: int, held: bool) -> None:
    """A QoS 2 packet id the client sent (held) or released with PUBREL (not held)."""
    journal.append(["I", session.mountpoint, session.client_id, packet_id, 1 if held else 0])


class JournaledRetained(RetainedStore):
    """The retained store, with every set and clear journaled."""

    __slots__ = ("journal", "clock")

    def __init__(self, journal: Journal, clock: Callable[[], float], max_count: int,
                 mount_levels: int) -> None:
        super().__init__(max_count, mount_levels)
        self.journal = journal
        self.clock = clock

    def set(self, message: Message) -> bool:
        if not message.payload:
            self.clear(message.topic)
            return True
        kept = super().set(message)
        # $SYS topics are recomputed at every tick: nothing to keep.
        if kept and not message.topic.startswith("$SYS/"):
            stored = _store_message(message, self.clock(), time.time())
            record = message_record(0, stored)
            origin = message.origin
            publisher = principal_record(origin.principal) if origin is not None else None
            self.journal.append(["R", stored.topic, record[3], stored.qos, record[6],
                                 stored.expires_at, publisher])
        return kept

    def clear(self, topic: str) -> bool:
        cleared = super().clear(topic)
        if cleared and not topic.startswith("$SYS/"):
            self.journal.append(["C", topic])
        return cleared
