"""`$SYS/broker/...` topics, republished as retained messages every `sys_interval`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.engine.message import Message

if TYPE_CHECKING:
    from broker.engine.broker import Broker

VERSION = "roost 0.1.0"


def sys_values(broker: Broker) -> dict[str, str]:
    stats = broker.stats
    connected = sum(1 for s in broker.sessions.values() if s.conn is not None)
    values = {
        "version": VERSION,
        "uptime": f"{int(broker.now() - stats.started_at)} seconds",
        "clients/connected": str(connected),
        "clients/disconnected": str(len(broker.sessions) - connected),
        "clients/total": str(len(broker.sessions)),
        "clients/accepted": str(stats.clients_total),
        "messages/received": str(stats.messages_received),
        "messages/sent": str(stats.messages_sent),
        "messages/dropped": str(stats.dropped),
        "bytes/received": str(stats.bytes_received),
        "bytes/sent": str(stats.bytes_sent),
        "subscriptions/count": str(broker.trie.count),
        "retained messages/count": str(broker.retained.count),
    }
    for reason, count in stats.drops.items():  # queue_full, slow_client, packet_too_large
        values[f"messages/dropped/{reason}"] = str(count)
    return values


def publish_sys(broker: Broker) -> None:
    """Publish every $SYS value that changed since the last refresh."""
    for name, value in sys_values(broker).items():
        topic = "$SYS/broker/" + name
        payload = value.encode()
        current = broker.retained.get(topic)
        if current is not None and current.payload == payload:
            continue
        broker.publish(Message(topic, payload, 0, True))
