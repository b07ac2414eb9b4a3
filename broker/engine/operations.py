"""Runtime administration of a running broker, for the platform's change feed and tools.

Client ids and topics are given as the client sees them, inside `mountpoint`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.engine import durability
from broker.engine.interfaces import Action, ClientInfo, Decision, Principal
from broker.engine.message import message_from_properties
from broker.mqtt.reason_codes import ReasonCode

if TYPE_CHECKING:
    from broker.engine.broker import Broker
    from broker.engine.queues import Outgoing
    from broker.engine.session import Session
    from broker.mqtt.properties import Properties


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    topic_filter: str
    qos: int
    filtered: bool


@dataclass(frozen=True, slots=True)
class ConnectionSummary:
    client: ClientInfo
    subscriptions: tuple[SubscriptionInfo, ...]
    inflight: int
    queued: int


class Admin:
    """Operations on live connections, sessions and retained messages."""

    __slots__ = ("broker",)

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def _session(self, client_id: str, mountpoint: str) -> Session | None:
        return self.broker.sessions.get((mountpoint, client_id))

    def list_connections(self) -> list[ConnectionSummary]:
        """Every connected client with its subscriptions."""
        out = []
        for session in self.broker.sessions.values():
            conn = session.conn
            if conn is None:
                continue
            subs = tuple(
                SubscriptionInfo(f, s.options.qos, s.options.filtered)
                for f, s in session.subscriptions.items()
            )
            out.append(ConnectionSummary(conn.info(), subs, session.inflight_count(),
                                         session.pending()))
        return out

    def kick(
        self, client_id: str, reason_code: int = ReasonCode.ADMINISTRATIVE_ACTION,
        mountpoint: str = "", discard_session: bool = False,
    ) -> bool:
        """Disconnect a client (MQTT 5 clients get `reason_code`); True if it was connected.

        The will is published as for any server-side disconnect. With `discard_session`
        its persistent session goes too.
        """
        session = self._session(client_id, mountpoint)
        if session is None:
            return False
        conn = session.conn
        if conn is not None:
            conn.disconnect(reason_code)
        if discard_session and self.broker.sessions.get(session.key) is session:
            self.broker.end_session(session)
        return conn is not None

    def kick_where(
        self, predicate: Callable[[Principal], bool],
        reason_code: int = ReasonCode.ADMINISTRATIVE_ACTION, publish_will: bool = True,
    ) -> int:
        """Disconnect every client whose principal matches (e.g. a revoked device)."""
        count = 0
        for session in list(self.broker.sessions.values()):
            conn = session.conn
            if conn is not None and predicate(session.principal):
                conn.disconnect(reason_code, publish_will)
                count += 1
        return count

    def drop_subscriptions(
        self, client_id: str, mountpoint: str = "", filters: Iterable[str] | None = None
    ) -> int:
        """Remove some (or all) subscriptions of a session; returns how many went."""
        session = self._session(client_id, mountpoint)
        if session is None:
            return 0
        names = list(session.subscriptions) if filters is None else list(filters)
        return sum(1 for f in names if self.broker.unsubscribe(session, f))

    def recheck_subscriptions(
        self, client_id: str | None = None, mountpoint: str | None = None
    ) -> int:
        """Ask the authorizer again about every subscription (of one client, of one
        mountpoint, or of everyone); denied ones are removed. Returns how many went."""
        broker = self.broker
        removed = 0
        for session in list(broker.sessions.values()):
            if mountpoint is not None and session.mountpoint != mountpoint:
                continue
            if client_id is not None and session.client_id != client_id:
                continue
            lost = False
            for topic_filter, entry in list(session.subscriptions.items()):
                decision = broker.authorizer.authorize(
                    session.principal, Action.SUBSCRIBE, topic_filter, entry.options.qos,
                    False,
                )
                if decision is Decision.DENY:
                    broker.unsubscribe(session, topic_filter)
                    removed += 1
                    lost = True
                else:
                    lost = lost or decision is Decision.ALLOW_FILTERED
                    entry.options.filtered = decision is Decision.ALLOW_FILTERED
                    # The trie caches routes built from these options.
                    broker.trie.invalidate()
            if lost:
                self._drop_unreadable_queued(session)
        return removed

    def _drop_unreadable_queued(self, session: Session) -> None:
        """Messages queued for a session that it may no longer read are not delivered
        (as Mosquitto checks read access when it sends a queued message)."""
        queue = session.queue
        if queue is None or not queue.items:
            return
        broker = self.broker
        strip = len(session.mountpoint)

        def unreadable(out: Outgoing) -> bool:
            return not broker.authorizer.allow_delivery(
                session.principal, out.message.topic[strip:], out.qos)

        journal = broker.journal
        for out in queue.discard(unreadable):
            if out.jid and journal is not None:
                durability.delivery_done(journal, session, out)

    def set_retained(
        self, topic: str, payload: bytes, qos: int = 0, mountpoint: str = "",
        properties: Properties | None = None,
    ) -> None:
        """Publish a retained message as the broker itself (no authorizer involved)."""
        broker = self.broker
        message = message_from_properties(mountpoint + topic, payload, qos, True, properties,
                                          broker.now(), None)
        broker.publish(message)

    def forget_mountpoint(self, mountpoint: str) -> tuple[int, int]:
        """End every session under a mountpoint and drop all its retained messages, `$`
        topics included (a deleted tenant). Returns (sessions, retained messages)."""
        if not mountpoint:
            raise ValueError("forget_mountpoint needs a mountpoint")
        broker = self.broker
        sessions = [s for s in broker.sessions.values() if s.mountpoint == mountpoint]
        for session in sessions:
            if session.conn is not None:
                session.conn.disconnect(ReasonCode.ADMINISTRATIVE_ACTION)
            broker.end_session(session)
        topics = [message.topic for message in broker.retained if message.topic.startswith(mountpoint)]
        for topic in topics:
            broker.retained.clear(topic)
        return len(sessions), len(topics)

    def clear_retained(self, topic: str, mountpoint: str = "") -> bool:
        return self.broker.retained.clear(mountpoint + topic)

    def retained(self, topic_filter: str = "#", mountpoint: str = "") -> list[tuple[str, bytes]]:
        """Retained (topic, payload) pairs under a filter, topics without the mountpoint."""
        now = self.broker.now()
        return [
            (m.topic[len(mountpoint):], m.payload)
            for m in self.broker.retained.match(mountpoint + topic_filter)
            if m.expiry_at is None or m.expiry_at > now
        ]
