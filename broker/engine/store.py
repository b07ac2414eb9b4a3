"""Persistence of retained messages and persistent sessions: snapshots and two stores.

A snapshot holds every retained message and every session that outlives its connection,
with its subscriptions, queued messages, messages in flight to the client, packet ids of
QoS 2 messages received but not yet released, the plain attributes of its principal (what
authorization decides on) and a will waiting out its delay. Times are wall-clock seconds
so a snapshot stays meaningful across restarts.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broker.engine import wills
from broker.engine.interfaces import Principal
from broker.engine.message import Message
from broker.engine.queues import MessageQueue, Outgoing
from broker.engine.session import NEVER_EXPIRES, Session
from broker.engine.topics import SubOptions
from broker.mqtt.packets import Will
from broker.mqtt.properties import Properties
from broker.mqtt.topics import parse_shared

if TYPE_CHECKING:
    from broker.engine.broker import Broker

FORMAT_VERSION = 1
_FORWARDED = ("payload_format_indicator", "content_type", "response_topic",
              "correlation_data", "user_properties", "order")
_WILL_PROPERTIES = (*_FORWARDED, "message_expiry_interval", "will_delay_interval")
_PLAIN = (str, int, float, bool)


@dataclass(slots=True)
class StoredMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[str, Any] = field(default_factory=dict)
    expires_at: float | None = None
    publisher: list[Any] | None = None
    """Retained messages only: who published it, as `principal_record` makes it."""


@dataclass(slots=True)
class StoredSubscription:
    topic_filter: str
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    sub_id: int | None = None
    filtered: bool = False


@dataclass(slots=True)
class StoredDelivery:
    """A message on its way to one session: queued (packet_id 0) or in flight."""

    message: StoredMessage
    qos: int
    retain: bool
    sub_ids: list[int]
    packet_id: int = 0
    released: bool = False
    jid: int = 0
    """The journal's id of this delivery (0: not journaled)."""


@dataclass(slots=True)
class StoredWill:
    """The will of a disconnected client, published at `due_at` unless it comes back."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[str, Any]
    due_at: float


@dataclass(slots=True)
class StoredSession:
    client_id: str
    mountpoint: str
    principal: str
    protocol_level: int
    expiry_interval: int
    disconnected_at: float
    subscriptions: list[StoredSubscription] = field(default_factory=list)
    inflight: list[StoredDelivery] = field(default_factory=list)
    queued: list[StoredDelivery] = field(default_factory=list)
    qos2_received: list[int] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    will: StoredWill | None = None
    next_packet_id: int = 1
    """Where the session's packet ids go on after a restart, as in Mosquitto."""


@dataclass(slots=True)
class Snapshot:
    retained: list[StoredMessage] = field(default_factory=list)
    sessions: list[StoredSession] = field(default_factory=list)


# ---- broker <-> snapshot -------------------------------------------------------------


def _store_message(message: Message, mono_now: float, wall_now: float) -> StoredMessage:
    props = _properties_of(message.properties, _FORWARDED)
    expires_at = None
    if message.expiry_at is not None:
        expires_at = wall_now + (message.expiry_at - mono_now)
    return StoredMessage(message.topic, message.payload, message.qos, message.retain, props,
                         expires_at)


def principal_record(principal: Principal) -> list[Any]:
    """A principal as storage keeps it: name, mountpoint and its plain attributes (what
    authorization decides on; caches and other live objects are rebuilt on demand)."""
    return [principal.name, principal.mountpoint,
            {k: v for k, v in principal.attributes.items() if v is None or isinstance(v, _PLAIN)}]


def principal_from(record: list[Any]) -> Principal:
    return Principal(record[0], record[1], dict(record[2]))


def _load_message(stored: StoredMessage, mono_now: float, wall_now: float) -> Message:
    props = Properties(**stored.properties) if stored.properties else None
    expiry_at = None
    if stored.expires_at is not None:
        expiry_at = mono_now + (stored.expires_at - wall_now)
    return Message(stored.topic, stored.payload, stored.qos, stored.retain, props, expiry_at)


def _store_delivery(out: Outgoing, mono_now: float, wall_now: float) -> StoredDelivery:
    return StoredDelivery(_store_message(out.message, mono_now, wall_now), out.qos,
                          out.retain, list(out.sub_ids), out.packet_id, out.released, out.jid)


def snapshot(broker: Broker) -> Snapshot:
    """Everything that must survive a restart."""
    mono_now = broker.now()
    wall_now = time.time()
    snap = Snapshot()
    for message in broker.retained:
        if message.expiry_at is None or message.expiry_at > mono_now:
            stored_msg = _store_message(message, mono_now, wall_now)
            publisher = broker.retained.publisher(message)
            if publisher is not None:
                stored_msg.publisher = principal_record(publisher)
            snap.retained.append(stored_msg)
    for session in broker.sessions.values():
        if not session.persistent:
            continue
        disconnected_at = wall_now
        if session.conn is None:
            disconnected_at = wall_now - (mono_now - session.disconnected_at)
        stored = StoredSession(
            session.client_id, session.mountpoint, session.principal.name,
            session.protocol_level, session.expiry_interval, disconnected_at,
        )
        for topic_filter, entry in session.subscriptions.items():
            o = entry.options
            stored.subscriptions.append(StoredSubscription(
                topic_filter, o.qos, o.no_local, o.retain_as_published, o.retain_handling,
                o.sub_id, o.filtered,
            ))
        if session.inflight:
            stored.inflight = [_store_delivery(o, mono_now, wall_now)
                               for o in session.inflight.values()]
        if session.queue:
            stored.queued = [_store_delivery(o, mono_now, wall_now) for o in session.queue]
        if session.qos2_in:
            stored.qos2_received = sorted(session.qos2_in)
        stored.next_packet_id = session.pid_cursor
        # Plain values only: caches and other live objects are rebuilt on demand.
        stored.attributes = principal_record(session.principal)[2]
        will = session.will
        if will is not None and session.conn is None:
            due = session.disconnected_at + wills.delay_of(will)
            stored.will = StoredWill(will.topic, will.payload, will.qos, will.retain,
                                     _properties_of(will.properties, _WILL_PROPERTIES),
                                     wall_now + (due - mono_now))
        snap.sessions.append(stored)
    return snap


def _properties_of(props: Properties | None, names: tuple[str, ...]) -> dict[str, Any]:
    if props is None:
        return {}
    return {name: value for name in names if (value := getattr(props, name)) is not None}


def restore(broker: Broker, snap: Snapshot) -> None:
    """Load a snapshot into an empty broker."""
    mono_now = broker.now()
    wall_now = time.time()
    config = broker.config
    for stored_msg in snap.retained:
        if stored_msg.expires_at is None or stored_msg.expires_at > wall_now:
            publisher = principal_from(stored_msg.publisher) if stored_msg.publisher else None
            broker.retained.restore(_load_message(stored_msg, mono_now, wall_now), publisher)
    for stored in snap.sessions:
        principal = Principal(stored.principal, stored.mountpoint, dict(stored.attributes))
        session = Session(stored.client_id, stored.mountpoint, principal)
        will = None
        if stored.will is not None:
            w = stored.will
            will = Will(w.topic, w.payload, w.qos, w.retain, Properties(**w.properties) if w.properties else None)
        left: float | None = None
        if stored.expiry_interval != NEVER_EXPIRES:
            left = stored.expiry_interval - (wall_now - stored.disconnected_at)
            if left <= 0:
                if will is not None:
                    # The session ended while the broker was down: its will is overdue.
                    broker.scheduler.call_later(0, wills.publish_will, broker, session, will)
                continue
        session.expiry_interval = stored.expiry_interval
        session.protocol_level = stored.protocol_level
        session.pid_cursor = stored.next_packet_id
        session.disconnected_at = mono_now - (wall_now - stored.disconnected_at)
        broker.sessions[session.key] = session
        session.durable = True
        for sub in stored.subscriptions:
            opts = SubOptions(sub.qos, sub.no_local, sub.retain_as_published,
                              sub.retain_handling, sub.sub_id, sub.filtered)
            shared = parse_shared(sub.topic_filter)
            inner = sub.topic_filter if shared is None else shared[1]
            broker.subscribe(session, sub.topic_filter, shared[0] if shared else None,
                             stored.mountpoint + inner, opts)
        if stored.inflight:
            session.inflight = {}
            for d in stored.inflight:
                out = Outgoing(_load_message(d.message, mono_now, wall_now), d.qos, d.retain,
                               tuple(d.sub_ids))
                out.packet_id = d.packet_id
                out.released = d.released
                out.jid = d.jid
                session.inflight[d.packet_id] = out
        if stored.queued:
            session.queue = MessageQueue(config.max_queued_messages, config.max_queued_bytes)
            for d in stored.queued:
                out = Outgoing(_load_message(d.message, mono_now, wall_now), d.qos, d.retain,
                               tuple(d.sub_ids))
                out.jid = d.jid
                # Restored in full: the limits applied when the messages were accepted.
                session.queue.push(out, len(stored.queued), 0)
        if stored.qos2_received:
            session.qos2_in = set(stored.qos2_received)
        if left is not None:
            session.expiry_handle = broker.scheduler.call_later(left, broker.expire, session)
        if will is not None and stored.will is not None:
            # Due while the broker was down: published once every session is back.
            session.will = will
            session.will_handle = broker.scheduler.call_later(
                max(0.0, stored.will.due_at - wall_now), broker.will_due, session)


# ---- stores --------------------------------------------------------------------------


class MemoryStore:
    """Keeps the last snapshot in memory: state survives a broker restart in one process."""

    __slots__ = ("snapshot",)

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def load(self) -> Snapshot:
        return self.snapshot

    def save(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {k: _encode(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _loaded_properties(raw: dict[str, Any]) -> dict[str, Any]:
    """Stored properties as `Properties` takes them: JSON made the user property pairs lists."""
    props = dict(raw.get("properties") or {})
    if "user_properties" in props:
        props["user_properties"] = [tuple(p) for p in props["user_properties"]]
    return props


def _message(raw: dict[str, Any]) -> StoredMessage:
    return StoredMessage(raw["topic"], raw["payload"], raw["qos"], raw["retain"], _loaded_properties(raw),
                         raw.get("expires_at"), raw.get("publisher"))


def _delivery(raw: dict[str, Any]) -> StoredDelivery:
    return StoredDelivery(_message(raw["message"]), raw["qos"], raw["retain"],
                          list(raw["sub_ids"]), raw.get("packet_id", 0),
                          raw.get("released", False), raw.get("jid", 0))


SNAPSHOT = "roost-broker.json"
"""The snapshot's file name unless told another (mosquitto.conf's `persistence_file`)."""
_MOSQUITTO_DB = b"\x00\xb5\x00mosquitto db"


class StoreError(Exception):
    """The persisted state cannot be read: the broker does not start rather than lose it."""


def read_snapshot(path: str) -> str | None:
    """The snapshot's text, or None when there is none yet."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if data.startswith(_MOSQUITTO_DB):
        raise StoreError(f"{path} is a Mosquitto database, which Roost cannot read: move it "
                         "away, or name another persistence_file")
    try:
        text = data.decode("utf-8")
        snapshot_from_json(text)
    except (ValueError, KeyError, TypeError) as error:
        raise StoreError(f"{path} is not a Roost broker snapshot ({error})") from None
    return text


def snapshot_from_json(text: str) -> Snapshot:
    data = _decode(json.loads(text))
    if data.get("format") != FORMAT_VERSION:
        raise ValueError(f"unknown broker state format {data.get('format')!r}")
    snap = Snapshot(retained=[_message(m) for m in data["retained"]])
    for raw in data["sessions"]:
        snap.sessions.append(StoredSession(
            raw["client_id"], raw["mountpoint"], raw["principal"], raw["protocol_level"],
            raw["expiry_interval"], raw["disconnected_at"],
            [StoredSubscription(**s) for s in raw["subscriptions"]],
            [_delivery(d) for d in raw["inflight"]],
            [_delivery(d) for d in raw["queued"]],
            list(raw["qos2_received"]),
            dict(raw.get("attributes") or {}),
            _will(raw["will"]) if raw.get("will") else None,
            int(raw.get("next_packet_id", 1)),
        ))
    return snap


def _will(raw: dict[str, Any]) -> StoredWill:
    return StoredWill(raw["topic"], raw["payload"], raw["qos"], raw["retain"], _loaded_properties(raw),
                      raw["due_at"])


def snapshot_to_json(snap: Snapshot) -> str:
    data = _encode(snap)
    data["format"] = FORMAT_VERSION
    return json.dumps(data, separators=(",", ":"))


class FileStore:
    """One JSON file in `directory`, replaced atomically (temp file, fsync, rename)."""

    __slots__ = ("directory", "path")

    def __init__(self, directory: str, filename: str = SNAPSHOT) -> None:
        self.directory = directory
        self.path = os.path.join(directory, filename)

    def load(self) -> Snapshot:
        text = read_snapshot(self.path)
        return Snapshot() if text is None else snapshot_from_json(text)

    def save(self, snapshot: Snapshot) -> None:
        os.makedirs(self.directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".roost-broker-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(snapshot_to_json(snapshot))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
        # The rename itself must reach the disk too.
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
