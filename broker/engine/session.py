"""Session state that outlives a connection: subscriptions, in-flight and queued messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.engine.queues import MessageQueue, Outgoing

if TYPE_CHECKING:
    from broker.engine.connection import Connection
    from broker.engine.interfaces import Principal
    from broker.engine.topics import SubOptions
    from broker.mqtt.packets import Will

NEVER_EXPIRES = 0xFFFFFFFF


class Subscribed:
    """A session's subscription as the client named it, and where it sits in the trie."""

    __slots__ = ("options", "group", "mounted")

    def __init__(self, options: SubOptions, group: str | None, mounted: str) -> None:
        self.options = options
        self.group = group
        self.mounted = mounted


class Session:
    """Everything MQTT keeps per client identifier (section 4.1).

    Structures most idle clients never need (in-flight table, queue, QoS 2 receiver
    state) are created on first use to keep idle sessions small.
    """

    __slots__ = (
        "client_id", "mountpoint", "principal", "conn", "subscriptions", "expiry_interval",
        "protocol_level", "inflight", "queue", "qos2_in", "pid_cursor", "will",
        "will_handle", "expiry_handle", "disconnected_at", "durable", "journal_key", "__weakref__",
    )

    def __init__(self, client_id: str, mountpoint: str, principal: Principal) -> None:
        self.client_id = client_id
        self.mountpoint = mountpoint
        self.principal = principal
        self.conn: Connection | None = None
        self.subscriptions: dict[str, Subscribed] = {}
        self.expiry_interval = 0
        self.protocol_level = 4
        self.inflight: dict[int, Outgoing] | None = None
        self.queue: MessageQueue | None = None
        self.qos2_in: set[int] | None = None
        self.pid_cursor = 1
        self.will: Will | None = None
        self.will_handle: Any = None
        self.expiry_handle: Any = None
        self.disconnected_at = 0.0
        # Whether the journal has this session (its changes are then journaled too).
        self.durable = False
        # Mountpoint and client id as the journal's records name them (made on first use).
        self.journal_key: str | None = None

    def __repr__(self) -> str:
        return f"<Session {self.mountpoint}{self.client_id}>"

    @property
    def key(self) -> tuple[str, str]:
        return self.mountpoint, self.client_id

    @property
    def persistent(self) -> bool:
        """Whether the session survives its connection (3.1.1 clean session 0, 5.0 expiry)."""
        return self.expiry_interval > 0

    def accepts_now(self) -> bool:
        """Connected and not behind on writes: a shared subscription may pick it."""
        conn = self.conn
        return conn is not None and not conn.backlogged

    def next_packet_id(self) -> int:
        """A packet id not used by any in-flight message [MQTT-2.2.1-3].

        Ids follow Mosquitto's sequence, which numbers a QoS 1/2 message when it is queued:
        one discarded from the queue unsent used up its number."""
        inflight = self.inflight
        pid = self.pid_cursor
        queue = self.queue
        if queue is not None and queue.skipped:
            pid = (pid - 1 + queue.skipped) % 0xFFFF + 1
            queue.skipped = 0
        if inflight:
            # The caller keeps fewer than 65535 in flight, so this loop ends.
            while pid in inflight:
                pid = pid + 1 if pid < 0xFFFF else 1
        self.pid_cursor = pid + 1 if pid < 0xFFFF else 1
        return pid

    def enqueue(self, item: Outgoing, max_count: int, max_bytes: int) -> bool:
        """Queue behind earlier messages; False when the limits given refuse it."""
        queue = self.queue
        if queue is None:
            queue = self.queue = MessageQueue(max_count, max_bytes)
        return queue.push(item, max_count, max_bytes)

    def pending(self) -> int:
        return len(self.queue) if self.queue is not None else 0

    def inflight_count(self) -> int:
        return len(self.inflight) if self.inflight is not None else 0
