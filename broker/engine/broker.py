"""The broker core: sessions by client id, routing, retained messages, wills and timers."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from broker.config import BrokerConfig
from broker.engine import durability, wills
from broker.engine.connection import Connection
from broker.engine.interfaces import (
    AllowAll,
    Authenticator,
    Authorizer,
    EventHooks,
    Principal,
    Store,
)
from broker.engine.journal import Journal
from broker.engine.message import Message
from broker.engine.outbound import queue_retained, send_publish
from broker.engine.queues import DROP_QUEUE_FULL, DROP_SLOW_CLIENT, Outgoing
from broker.engine.retained import RetainedStore
from broker.engine.session import NEVER_EXPIRES, Session, Subscribed
from broker.engine.states import AUTHENTICATING, CONNECTED, NEW
from broker.engine.topics import SubOptions, SubscriptionTrie
from broker.mqtt.reason_codes import ReasonCode

logger = logging.getLogger(__name__)

TICK = 0.5
"""How far past the offline limit a connected, paused-on client's queue may grow."""


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Time and timers; an asyncio event loop is one."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any: ...


class Stats:
    """Counters for $SYS; plain attributes, bumped on the hot path."""

    __slots__ = ("messages_received", "messages_sent", "bytes_received", "bytes_sent",
                 "dropped", "drops", "denied", "clients_total", "started_at")

    def __init__(self, now: float) -> None:
        self.messages_received = 0
        self.messages_sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.dropped = 0
        # Messages dropped, by reason (queues.DROP_*); `dropped` is their sum.
        self.drops: dict[str, int] = {}
        self.denied = 0
        self.clients_total = 0
        self.started_at = now

    def drop(self, reason: str) -> None:
        self.dropped += 1
        drops = self.drops
        drops[reason] = drops.get(reason, 0) + 1


class Broker:
    """All connections and sessions of one broker process."""

    def __init__(
        self,
        config: BrokerConfig,
        scheduler: Scheduler,
        authenticator: Authenticator | None = None,
        authorizer: Authorizer | None = None,
        store: Store | None = None,
        hooks: EventHooks | None = None,
    ) -> None:
        allow_all = AllowAll()
        self.config = config
        self.scheduler = scheduler
        self.now = scheduler.time
        self.authenticator: Authenticator = authenticator or allow_all
        self.authorizer: Authorizer = authorizer or allow_all
        # Allow-all needs no per-message authorizer call at all.
        self.allow_all = isinstance(self.authorizer, AllowAll)
        self.store = store
        # With a journal, every change to a durable session or retained message is logged
        # as it happens (and acknowledged once on disk, at durability "ack").
        self.journal = store if isinstance(store, Journal) else getattr(store, "journal", None)
        self.hooks = hooks or EventHooks()
        self.sessions: dict[tuple[str, str], Session] = {}
        self.connections: set[Connection] = set()
        self.trie = SubscriptionTrie(mount_levels=config.mount_levels)
        self.retained = RetainedStore(config.max_retained, config.mount_levels)
        if self.journal is not None:
            self.retained = durability.JournaledRetained(
                self.journal, self.now, config.max_retained, config.mount_levels)
        self.stats = Stats(self.now())
        self._timers: dict[str, Any] = {}
        self._stopped = False

    # ---- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Load persisted state and start the periodic work."""
        if self.store is not None:
            from broker.engine.store import restore

            restore(self, self.store.load())
        if self.journal is not None:
            loop = self.scheduler
            if not isinstance(loop, asyncio.AbstractEventLoop):
                loop = asyncio.get_event_loop()
            self.journal.start(self, loop)
        self._timers["tick"] = self.scheduler.call_later(TICK, self._tick)
        if self.config.sys_interval > 0:
            self._sys_tick()
        if (self.store is not None and self.journal is None
                and self.config.autosave_interval > 0):
            self._timers["autosave"] = self.scheduler.call_later(
                self.config.autosave_interval, self._autosave
            )

    def _sys_tick(self) -> None:
        if self._stopped:
            return
        from broker.engine.sys_topics import publish_sys

        publish_sys(self)
        self._timers["sys"] = self.scheduler.call_later(self.config.sys_interval, self._sys_tick)

    def stop(self) -> None:
        """Stop timers and save state; connections are closed by the network layer."""
        self._stopped = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.save()

    def save(self) -> None:
        if self.store is None:
            return
        from broker.engine.store import snapshot

        self.store.save(snapshot(self))

    def _autosave(self) -> None:
        if self._stopped:
            return
        try:
            self.save()
        except OSError:
            logger.exception("autosave failed")
        self._timers["autosave"] = self.scheduler.call_later(
            self.config.autosave_interval, self._autosave
        )

    def _tick(self) -> None:
        if self._stopped:
            return
        now = self.now()
        config = self.config
        hard_limit = 4 * config.max_write_buffer
        for conn in list(self.connections):
            state = conn.state
            if state == CONNECTED:
                keep_alive = conn.keep_alive
                # 1.5 times the keep alive without a packet ends the connection [MQTT-3.1.2-24].
                if keep_alive and now - conn.last_rx > 1.5 * keep_alive:
                    conn.disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)
                    continue
            elif state in (NEW, AUTHENTICATING) and now - conn.opened_at > config.connect_timeout:
                # A client that has not finished CONNECT in time (half open, trickling).
                conn.abort(ReasonCode.MAXIMUM_CONNECT_TIME)
                continue
            stall = config.write_stall_timeout
            if conn.backlogged and (now - conn.backlog_since > stall
                                    or conn.link.buffered() > hard_limit):
                conn.abort(ReasonCode.QUOTA_EXCEEDED)
        self._timers["tick"] = self.scheduler.call_later(TICK, self._tick)

    # ---- sessions ----------------------------------------------------------------

    def new_client_id(self) -> str:
        # Mosquitto's form, "auto-" and 128 random bits as a UUID, which tools may recognise.
        while True:
            client_id = self.config.client_id_prefix + str(uuid.UUID(bytes=secrets.token_bytes(16))).upper()
            if ("", client_id) not in self.sessions:
                return client_id

    def attach(
        self, conn: Connection, client_id: str, principal: Principal, clean_start: bool,
        expiry: int,
    ) -> tuple[Session, bool]:
        """Bind a connection to its session; returns (session, session present)."""
        key = (principal.mountpoint, client_id)
        session = self.sessions.get(key)
        if session is not None and session.conn is not None:
            # Takeover: the old connection gets 0x8E and is closed [MQTT-3.1.4-3]. Its will
            # goes out only when the session ends with it (its expiry is 0, or the new
            # connection starts clean); a persistent session that carries on merely
            # reconnected, and a will would falsely say it went offline (as in Mosquitto).
            ends = session.expiry_interval == 0 or clean_start
            session.conn.disconnect(ReasonCode.SESSION_TAKEN_OVER, publish_will=ends)
            session = self.sessions.get(key)
        if session is not None:
            if session.expiry_handle is not None:
                session.expiry_handle.cancel()
                session.expiry_handle = None
            if session.will_handle is not None:
                # Back within the will delay, with Clean Start or not: the will is not sent
                # [MQTT-3.1.3-9] (ending the session below must not publish it either).
                session.will_handle.cancel()
                session.will_handle = None
                session.will = None
            if clean_start:
                self.end_session(session)
                session = None
        present = session is not None
        if session is None:
            session = Session(client_id, principal.mountpoint, principal)
            self.sessions[key] = session
        session.principal = principal
        session.conn = conn
        session.expiry_interval = expiry
        session.protocol_level = conn.level
        session.will = conn.will
        journal = self.journal
        if journal is not None and (expiry > 0 or session.durable):
            # On disk before its CONNACK (held until then).
            session.durable = True
            durability.session_changed(journal, session, self.now())
            conn.hold_output()
        return session, present

    def connected(self, conn: Connection) -> None:
        self.stats.clients_total += 1
        hooks = self.hooks.connected
        if hooks:
            info = conn.info()
            for hook in hooks:
                _call_hook(hook, info)

    def detach(self, conn: Connection, reason: int, publish_will: bool) -> None:
        """A connected client is gone; decide the fate of its will and session."""
        session = conn.session
        if session is None or session.conn is not conn:
            return
        session.conn = None
        session.disconnected_at = self.now()
        will = session.will
        session.will = None
        if will is not None and publish_will:
            delay = wills.delay_of(will)
            if delay and session.expiry_interval:
                session.will = will
                session.will_handle = self.scheduler.call_later(
                    delay, self.will_due, session
                )
            else:
                wills.publish_will(self, session, will)
        if session.expiry_interval == 0:
            self.end_session(session)
            self._report_detach(conn, reason)
            return
        journal = self.journal
        if conn.retained_pending:
            queued = queue_retained(conn)
            if queued and session.durable and journal is not None:
                for target in queued:
                    durability.deliveries(journal, target[1].message, [target], self.now())
        if session.durable and journal is not None:
            durability.session_changed(journal, session, self.now())
        if session.expiry_interval != NEVER_EXPIRES:
            session.expiry_handle = self.scheduler.call_later(
                session.expiry_interval, self.expire, session
            )
        self._report_detach(conn, reason)

    def _report_detach(self, conn: Connection, reason: int) -> None:
        hooks = self.hooks.disconnected
        if hooks:
            info = conn.info()
            for hook in hooks:
                _call_hook(hook, info, reason)

    def will_due(self, session: Session) -> None:
        """A will's delay is over and its client did not come back: publish it."""
        session.will_handle = None
        will = session.will
        session.will = None
        if will is not None:
            wills.publish_will(self, session, will)
            if session.durable and self.journal is not None:
                durability.session_changed(self.journal, session, self.now())

    def expire(self, session: Session) -> None:
        session.expiry_handle = None
        if session.conn is None and self.sessions.get(session.key) is session:
            self.end_session(session)

    def end_session(self, session: Session) -> None:
        """Discard a session; a will still waiting for its delay goes now [MQTT-3.1.3-9]."""
        for handle in (session.will_handle, session.expiry_handle):
            if handle is not None:
                handle.cancel()
        session.will_handle = session.expiry_handle = None
        will = session.will
        session.will = None
        if will is not None and session.conn is None:
            wills.publish_will(self, session, will)
        if session.durable:
            session.durable = False
            if self.journal is not None:
                durability.session_ended(self.journal, session)
        for topic_filter in list(session.subscriptions):
            self.unsubscribe(session, topic_filter)
        if session.queue is not None:
            session.queue.clear()
        session.inflight = None
        session.qos2_in = None
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]

    # ---- subscriptions -----------------------------------------------------------

    def subscribe(
        self, session: Session, topic_filter: str, group: str | None, mounted: str,
        opts: SubOptions,
    ) -> bool:
        """Add or replace a subscription; True when it did not exist [MQTT-3.8.4-3]."""
        existing = session.subscriptions.get(topic_filter)
        session.subscriptions[topic_filter] = Subscribed(opts, group, mounted)
        if group is None:
            self.trie.add(mounted, session, opts)
        else:
            self.trie.add_shared(group, mounted, session, opts)
        journal = self.journal
        if journal is not None and session.durable:
            journal.append(["+", session.mountpoint, session.client_id, topic_filter, opts.qos,
                            opts.no_local, opts.retain_as_published, opts.retain_handling,
                            opts.sub_id, opts.filtered])
            if session.conn is not None:
                session.conn.hold_output()  # on disk before its SUBACK
        return existing is None

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        entry = session.subscriptions.pop(topic_filter, None)
        if entry is None:
            return False
        if entry.group is None:
            self.trie.remove(entry.mounted, session)
        else:
            self.trie.remove_shared(entry.group, entry.mounted, session)
        journal = self.journal
        if journal is not None and session.durable:
            journal.append(["-", session.mountpoint, session.client_id, topic_filter])
            if session.conn is not None:
                session.conn.hold_output()
        return True

    # ---- routing -----------------------------------------------------------------

    def publish(self, message: Message) -> bool:
        """Route one accepted message to every matching subscription.

        True when a subscription matched or a `published` hook took the message onward (an
        outgoing bridge topic): an MQTT 5 PUBACK otherwise says 0x10, no matching subscribers."""
        if message.retain:
            self.retained.set(message)
        routes, groups = self.trie.match(message.topic)
        sender = message.origin
        # upgrade_outgoing_qos: every subscriber gets the QoS it subscribed with.
        msg_qos = 2 if self.config.upgrade_outgoing_qos else message.qos
        retain = message.retain
        journal = self.journal
        stats = self.stats
        durable: list[tuple[Session, Outgoing]] | None = None
        for route in routes:
            session = route.session
            if session is sender:
                qos = route.local_qos
                if qos < 0:
                    continue  # no-local [MQTT-3.8.3-3]
                keep_retain = route.local_rap
                sub_ids = route.local_sub_ids
            else:
                qos = route.qos
                keep_retain = route.rap
                sub_ids = route.sub_ids
            if route.filtered and not self._deliverable(session, message):
                continue
            if qos > msg_qos:
                qos = msg_qos
            conn = session.conn
            if conn is None:
                if qos and session.persistent:
                    out = Outgoing(message, qos, retain and keep_retain, sub_ids)
                    if self._enqueue(session, out) and journal is not None and session.durable:
                        if durable is None:
                            durable = []
                        durable.append((session, out))
                continue
            if conn.shedding and not qos:
                stats.drop(DROP_SLOW_CLIENT)  # as send_publish would, without the call
                continue
            # Forwarded messages keep RETAIN only with retain-as-published [MQTT-3.3.1-12].
            sent = send_publish(conn, message, qos, retain and keep_retain, sub_ids)
            if sent is not None and journal is not None and session.durable:
                if durable is None:
                    durable = []
                durable.append((session, sent))
        for group in groups:
            picked = group.pick()
            if picked is None:
                continue
            session, opts = picked
            if opts.filtered and not self._deliverable(session, message):
                continue
            qos = min(opts.qos, msg_qos)
            sub_ids = (opts.sub_id,) if opts.sub_id is not None else ()
            conn = session.conn
            if conn is None:
                if qos:
                    out = Outgoing(message, qos, False, sub_ids)
                    if self._enqueue(session, out) and journal is not None and session.durable:
                        if durable is None:
                            durable = []
                        durable.append((session, out))
                continue
            sent = send_publish(conn, message, qos, retain and opts.retain_as_published, sub_ids)
            if sent is not None and journal is not None and session.durable:
                if durable is None:
                    durable = []
                durable.append((session, sent))
        if durable is not None:
            assert journal is not None
            durability.deliveries(journal, message, durable, self.now())
        matched = bool(routes or groups)
        hooks = self.hooks.published
        if hooks:
            principal = sender.principal if sender is not None else None
            for hook in hooks:
                if _call_hook(hook, principal, message):
                    matched = True
        # The sender matters only for no-local while routing; a retained or queued message
        # must not keep its session alive.
        message.origin = None
        if retain:
            message.drop_forms()
        return matched

    def _enqueue(self, session: Session, out: Outgoing) -> bool:
        config = self.config
        if not session.enqueue(out, config.max_queued_messages, config.max_queued_bytes):
            self.stats.drop(DROP_QUEUE_FULL)
            return False
        return True

    def _deliverable(self, session: Session, message: Message) -> bool:
        principal = session.principal
        topic = message.topic[len(principal.mountpoint):]
        return self.authorizer.allow_delivery(principal, topic, message.qos)


def _call_hook(hook: Callable[..., bool | None], *args: Any) -> bool | None:
    """Run a platform hook; its failure is logged, never the client's problem."""
    try:
        return hook(*args)
    except Exception:
        logger.exception("event hook %r failed", hook)
        return None
