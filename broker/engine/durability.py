"""What the engine tells the journal: records for sessions, deliveries and retained messages.

Only sessions that outlive their connection (`Session.durable`) and retained messages are
journaled; QoS 0 and clean sessions write nothing.
"""

from __future__ import annotations

import time
from binascii import b2a_base64
from typing import TYPE_CHECKING

from broker.engine import wills
from broker.engine.journal import Journal, message_record, quote, record_text, will_record
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
    """One message queued (or already in flight) for durable sessions: one record.

    The record is written out when its group commit is: a delivery the subscriber
    acknowledged before then is left out of it (and needs no "A" record), and a message
    every target acknowledged by then writes nothing at all.
    """
    mid = jid = journal.next_id
    for _, out in outs:
        jid += 1
        out.jid = jid
    journal.next_id = jid + 1
    # The wall clock only turns an expiry into a date.
    wall_now = time.time() if message.expiry_at is not None else 0.0
    journal.append_deferred(_Deliveries(mid, message, outs, mono_now, wall_now))


class _Deliveries:
    """A "D" record waiting for its group commit."""

    __slots__ = ("mid", "message", "outs", "mono_now", "wall_now")

    def __init__(self, mid: int, message: Message, outs: list[tuple[Session, Outgoing]], mono_now: float,
                 wall_now: float) -> None:
        self.mid = mid
        self.message = message
        self.outs = outs
        self.mono_now = mono_now
        self.wall_now = wall_now

    def body(self) -> str | None:
        """The record as JSON text, without the deliveries already done; None when none is left."""
        message = self.message
        outs = self.outs
        if len(outs) == 1:  # the common case: one durable subscriber
            if not outs[0][1].jid:
                return None
        else:
            outs = [(session, out) for session, out in outs if out.jid]
            if not outs:
                return None
        if message.properties is None and message.expiry_at is None:
            # The common record, formatted directly: json.dumps of the lists cost the durable
            # QoS 1 path about a tenth of the broker's time.
            parts = []
            for session, out in outs:
                sub_ids = ",".join(map(str, out.sub_ids)) if out.sub_ids else ""
                parts.append(f"[{_key(session)},{out.jid},{out.qos},"
                             f"{'true' if out.retain else 'false'},[{sub_ids}],{out.packet_id}]")
            payload = b2a_base64(message.payload, newline=False).decode("ascii")
            return (f'["D",{self.mid},{quote(message.topic)},"{payload}",{message.qos},'
                    f'{"true" if message.retain else "false"},null,null,[{",".join(parts)}]]')
        targets = [[session.mountpoint, session.client_id, out.jid, out.qos, out.retain,
                    list(out.sub_ids), out.packet_id] for session, out in outs]
        record = message_record(self.mid, _store_message(message, self.mono_now, self.wall_now))
        record[0] = "D"
        record.append(targets)
        return record_text(record)


def _key(session: Session) -> str:
    key = session.journal_key
    if key is None:
        key = session.journal_key = f"{quote(session.mountpoint)},{quote(session.client_id)}"
    return key


def delivery_sent(journal: Journal, session: Session, out: Outgoing) -> None:
    """A queued delivery got its packet id (or a QoS 2 one its PUBREC). Recorded when its
    group commit is written, with the state it has then, and not at all once acknowledged:
    a subscriber that keeps up writes an "A" record for its deliveries but no "P"."""
    journal.append_deferred(_Sent(session, out))


class _Sent:
    """A "P" record waiting for its group commit."""

    __slots__ = ("session", "out")

    def __init__(self, session: Session, out: Outgoing) -> None:
        self.session = session
        self.out = out

    def body(self) -> str | None:
        out = self.out
        if not out.jid:
            return None
        released = 1 if out.released else 0
        return f'["P",{_key(self.session)},{out.jid},{out.packet_id},{released}]'


def delivery_done(journal: Journal, session: Session, out: Outgoing) -> None:
    jid = out.jid
    out.jid = 0
    if jid < journal.pending_from:
        journal.append_body(f'["A",{_key(session)},{jid}]')
    # else its "D" record is not written yet, and will be without it


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
