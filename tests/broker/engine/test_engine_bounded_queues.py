"""Bounded outgoing queues and slow clients (issue 14): a backed-up socket holds up only its
own deliveries, within message and byte limits, and every drop is counted by reason."""

from __future__ import annotations

from broker.engine.message import Message
from broker.engine.queues import packet_size
from broker.mqtt import Disconnect, Properties, Puback, Publish, Subscribe, Subscription, encode
from tests.broker.engine.engine_pairs import Peer, connected, make_broker


def publishes(packets):
    return [p for p in packets if isinstance(p, Publish)]


def backed_up(peer: Peer) -> None:
    """The transport says its buffer passed the high-water mark and holds more than the
    write buffer limit."""
    peer.link.backlog = peer.broker.config.max_write_buffer + 1
    peer.conn.set_backlogged(True)


def drained(peer: Peer) -> None:
    peer.link.backlog = 0
    peer.conn.set_backlogged(False)


def test_a_publisher_is_still_read_and_acknowledged_while_a_subscriber_is_backed_up():
    broker, _ = make_broker()
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 1)]))
    backed_up(slow)
    pub = connected(broker, "p")
    for i in range(1, 6):
        pub.send(Publish("x", b"m", 1, packet_id=i))
    assert pub.link.reading
    assert [p.packet_id for p in pub.received() if isinstance(p, Puback)] == [1, 2, 3, 4, 5]


def test_qos0_to_a_backed_up_client_is_dropped_for_it_alone_and_counted():
    broker, _ = make_broker()
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 0)]))
    fast = connected(broker, "fast")
    fast.send(Subscribe(1, [Subscription("x", 0)]))
    slow.received()
    fast.received()
    backed_up(slow)
    pub = connected(broker, "p")
    pub.send(Publish("x", b"m"))
    assert len(publishes(fast.received())) == 1
    assert publishes(slow.received()) == []
    assert broker.stats.drops == {"slow_client": 1}
    assert broker.stats.dropped == 1


def test_once_qos0_is_dropped_for_a_client_it_is_until_the_socket_drains():
    """Shedding keeps on without another look at the buffer until the transport's low-water
    mark (set_backlogged(False)); then messages flow again."""
    broker, _ = make_broker()
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 0)]))
    slow.received()
    backed_up(slow)
    pub = connected(broker, "p")
    pub.send(Publish("x", b"first"))
    slow.link.backlog = 0  # drained in part, but still over the high-water mark
    pub.send(Publish("x", b"second"))
    assert publishes(slow.received()) == []
    assert broker.stats.drops == {"slow_client": 2}
    drained(slow)
    pub.send(Publish("x", b"third"))
    assert [p.payload for p in publishes(slow.received())] == [b"third"]


def test_qos0_to_a_client_below_its_write_buffer_limit_is_still_sent():
    broker, _ = make_broker()
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 0)]))
    slow.received()
    slow.conn.set_backlogged(True)  # over the high-water mark, under max_write_buffer
    pub = connected(broker, "p")
    pub.send(Publish("x", b"m"))
    assert len(publishes(slow.received())) == 1
    assert broker.stats.dropped == 0


def test_qos1_to_a_backed_up_client_waits_in_its_queue_and_goes_when_it_drains():
    broker, _ = make_broker()
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 1)]))
    slow.received()
    backed_up(slow)
    pub = connected(broker, "p")
    for i in range(1, 4):
        pub.send(Publish("x", str(i).encode(), 1, packet_id=i))
    assert publishes(slow.received()) == []
    assert slow.conn.session.pending() == 3
    drained(slow)
    assert [m.payload for m in publishes(slow.received())] == [b"1", b"2", b"3"]
    assert broker.stats.dropped == 0


def test_a_connected_clients_queue_is_bounded_by_messages():
    broker, _ = make_broker(max_queued_messages=2)
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 1)]))
    slow.received()
    backed_up(slow)
    pub = connected(broker, "p")
    for i in range(1, 6):
        pub.send(Publish("x", str(i).encode(), 1, packet_id=i))
    assert slow.conn.session.pending() == 2
    assert broker.stats.drops == {"queue_full": 3}
    drained(slow)
    assert [m.payload for m in publishes(slow.received())] == [b"1", b"2"]


def test_the_byte_limit_counts_topic_and_properties_not_only_the_payload():
    # Two messages with a 1-byte payload but a long topic and user properties: the payload
    # alone would fit many times over, the packets do not.
    topic = "t/" + "x" * 200
    props = Properties(user_properties=[("k" * 100, "v" * 100)])
    size = packet_size(Message(topic, b"m", 1, False, props))
    assert size > 400
    broker, _ = make_broker(max_queued_bytes=size + size // 2)
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("t/#", 1)]))
    slow.received()
    backed_up(slow)
    pub = connected(broker, "p")
    pub.send(Publish(topic, b"m", 1, packet_id=1, properties=props))
    pub.send(Publish(topic, b"m", 1, packet_id=2, properties=props))
    assert slow.conn.session.pending() == 1
    assert broker.stats.drops == {"queue_full": 1}
    assert slow.conn.session.queue.bytes == size


def test_the_queue_gives_its_bytes_back_as_it_drains():
    broker, _ = make_broker(max_queued_bytes=1 << 20)
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 1)]))
    slow.received()
    backed_up(slow)
    pub = connected(broker, "p")
    pub.send(Publish("x", b"m" * 100, 1, packet_id=1))
    assert slow.conn.session.queue.bytes == packet_size(Message("x", b"m" * 100, 1, False))
    drained(slow)
    assert slow.conn.session.queue.bytes == 0


def test_with_slow_client_disconnect_an_overflowing_client_is_disconnected_with_0x97():
    broker, clock = make_broker(slow_client="disconnect", max_queued_messages=1)
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 1)]))
    slow.received()
    slow.conn.set_backlogged(True)
    # Above max_write_buffer the QoS 1 message is queued; the queue holds one.
    slow.link.backlog = broker.config.max_write_buffer + 1
    pub = connected(broker, "p")
    pub.send(Publish("x", b"1", 1, packet_id=1))
    pub.send(Publish("x", b"2", 1, packet_id=2))
    assert not slow.link.closed  # not inside the publisher's fan-out
    slow.link.backlog = 0  # nothing left unread: the DISCONNECT can be written
    clock.advance(0)
    [disconnect] = [p for p in slow.received() if isinstance(p, Disconnect)]
    assert disconnect.reason_code == 0x97
    assert slow.link.closed and not slow.link.aborted
    assert broker.stats.drops == {"queue_full": 1}


def test_with_slow_client_disconnect_a_stuck_client_is_reset_rather_than_waited_for():
    broker, clock = make_broker(slow_client="disconnect")
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 0)]))
    backed_up(slow)
    pub = connected(broker, "p")
    pub.send(Publish("x", b"1"))
    clock.advance(0)
    assert slow.link.aborted
    assert ("", "slow") not in broker.sessions or broker.sessions[("", "slow")].conn is None


def test_with_slow_client_drop_an_overflowing_client_stays_connected():
    broker, clock = make_broker(max_queued_messages=1)
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 1)]))
    backed_up(slow)
    pub = connected(broker, "p")
    for i in range(1, 4):
        pub.send(Publish("x", b"m", 1, packet_id=i))
    clock.advance(0)
    assert not slow.link.closed
    assert broker.stats.drops == {"queue_full": 2}


def test_an_offline_sessions_queue_drops_are_counted_as_queue_full():
    broker, _ = make_broker(max_queued_messages=1)
    sub = connected(broker, "s", level=4, clean_start=False)
    sub.send(Subscribe(1, [Subscription("x", 1)]))
    sub.lose()
    pub = connected(broker, "p")
    pub.send(Publish("x", b"1", 1, packet_id=1))
    pub.send(Publish("x", b"2", 1, packet_id=2))
    assert broker.stats.drops == {"queue_full": 1}


def test_encoding_is_unaffected_for_a_client_that_keeps_up():
    broker, _ = make_broker()
    sub = connected(broker, "s", level=4)
    sub.send(Subscribe(1, [Subscription("x", 0)]))
    sub.received()
    pub = connected(broker, "p", level=4)
    pub.send(Publish("x", b"hello"))
    assert bytes(sub.link.written) == encode(Publish("x", b"hello"), 4)
    assert broker.stats.dropped == 0


def test_the_platform_metrics_count_drops_by_reason():
    from collections import Counter

    from prometheus_client import generate_latest
    from prometheus_client.core import CollectorRegistry

    from broker.integration.metrics import BrokerCollector

    class NoAuthority:
        refusals: dict[str, int] = {}
        denials: dict[str, int] = {}

    class NoWriter:
        pending = 0

    broker, _ = make_broker()
    slow = connected(broker, "slow")
    slow.send(Subscribe(1, [Subscription("x", 0)]))
    backed_up(slow)
    pub = connected(broker, "p")
    pub.send(Publish("x", b"1"))
    pub.send(Publish("x", b"2"))
    registry = CollectorRegistry()
    registry.register(BrokerCollector(broker, NoAuthority(), NoWriter(), Counter()))
    text = generate_latest(registry).decode()
    assert 'roost_broker_messages_dropped_total{reason="slow_client"} 2.0' in text
    assert 'roost_broker_messages_dropped_total{reason="queue_full"} 0.0' in text
