"""Per-session queues of QoS 1/2 messages waiting for a connection, a free in-flight slot
or a socket that drains.

Drop policy: a full queue refuses the *new* message (the oldest ones keep their place, as
in Mosquitto) and counts it in `dropped`; messages whose expiry passes while queued are
discarded when they reach the head [MQTT-3.3.2-5]. Bytes are counted as the PUBLISH
packet will take them on the wire (header, topic, packet id, properties, payload), so a
byte limit bounds memory even for messages that are mostly topic or user properties.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.engine.message import Message

# Why a message did not reach a subscriber (Stats.drops keys, metric labels).
DROP_QUEUE_FULL = "queue_full"  # QoS 1/2: the session's queue is at its message or byte limit
DROP_SLOW_CLIENT = "slow_client"  # QoS 0: the client's socket is backed up past its buffer
DROP_TOO_LARGE = "packet_too_large"  # over the client's Maximum Packet Size [MQTT-3.1.2-25]

# Fixed header (at most 5 bytes), topic length (2) and packet id (2).
_PUBLISH_OVERHEAD = 9


def packet_size(message: Message) -> int:
    """Bytes the PUBLISH of `message` takes (properties as forwarded, without the few
    bytes of per-subscriber expiry and subscription identifiers)."""
    size = _PUBLISH_OVERHEAD + len(message.topic_bytes()) + len(message.payload)
    if message.properties is not None:
        # Encoded again, but only for messages that wait in a queue.
        size += len(message.outgoing_properties((), -1)) - 1
    return size


class Outgoing:
    """One message on its way to one session: queued (packet_id 0) or in flight."""

    __slots__ = ("message", "qos", "retain", "sub_ids", "packet_id", "released", "jid",
                 "size")

    def __init__(
        self, message: Message, qos: int, retain: bool, sub_ids: tuple[int, ...]
    ) -> None:
        self.message = message
        self.qos = qos
        self.retain = retain
        self.sub_ids = sub_ids
        self.packet_id = 0
        # QoS 2 only: PUBREC received and PUBREL sent, waiting for PUBCOMP.
        self.released = False
        # The journal's id for a delivery to a durable session (0: not journaled).
        self.jid = 0
        # Its packet_size while queued (0 otherwise).
        self.size = 0


class MessageQueue:
    """A FIFO bounded by message count and packet bytes."""

    __slots__ = ("items", "bytes", "max_count", "max_bytes", "dropped", "skipped", "revoked")

    def __init__(self, max_count: int, max_bytes: int) -> None:
        # Public so the hot path can test emptiness without a method call.
        self.items: deque[Outgoing] = deque()
        self.bytes = 0
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.dropped = 0
        # QoS 1/2 messages discarded here unsent (expired, no longer allowed) since the
        # session last took a packet id.
        self.skipped = 0
        # Messages `discard` took out; they leave when they reach the head, so that the
        # packet ids they used up come in their place.
        self.revoked: set[Outgoing] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Outgoing]:
        revoked = self.revoked
        if revoked:
            return (item for item in self.items if item not in revoked)
        return iter(self.items)

    def push(
        self, item: Outgoing, max_count: int | None = None, max_bytes: int | None = None
    ) -> bool:
        """Append unless the queue is full (by this call's limits, or its own)."""
        size = packet_size(item.message)
        if max_count is None:
            max_count = self.max_count
        if max_bytes is None:
            max_bytes = self.max_bytes
        if len(self.items) >= max_count or (max_bytes and self.bytes + size > max_bytes):
            self.dropped += 1
            return False
        item.size = size
        self.items.append(item)
        self.bytes += size
        return True

    def pop(self, now: float) -> Outgoing | None:
        """The next message still alive, or None when the queue is empty."""
        items = self.items
        while items:
            item = items.popleft()
            self.bytes -= item.size
            item.size = 0
            if (item.message.expiry_at is None or item.message.expiry_at > now) and not (
                    self.revoked and item in self.revoked):
                return item
            if self.revoked:
                self.revoked.discard(item)
            if item.qos:
                self.skipped += 1
        return None

    def discard(self, unwanted: Callable[[Outgoing], bool]) -> list[Outgoing]:
        """Take out the messages `unwanted` picks; return them."""
        gone = [item for item in self.items if unwanted(item)]
        if gone:
            if self.revoked is None:
                self.revoked = set()
            self.revoked.update(gone)
            for item in gone:
                self.bytes -= item.size
                item.size = 0
        return gone

    def clear(self) -> None:
        self.items.clear()
        self.bytes = 0
        self.revoked = None
