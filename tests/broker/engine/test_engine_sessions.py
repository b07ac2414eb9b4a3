"""Sessions, QoS flows and limits, on client/broker pairs joined in memory."""

from __future__ import annotations

import pytest

from broker.mqtt import (
    Connack,
    Disconnect,
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    Subscription,
)
from tests.broker.engine.engine_pairs import Peer, connected, make_broker


def publishes(packets):
    return [p for p in packets if isinstance(p, Publish)]


def test_a_new_session_is_reported_as_not_present():
    """[MQTT-3.2.2-2]"""
    broker, _ = make_broker()
    assert Peer(broker).connect("a").session_present is False


def test_a_persistent_311_session_is_present_on_reconnect_and_keeps_its_subscriptions():
    """[MQTT-3.2.2-3]"""
    broker, _ = make_broker()
    sub = connected(broker, "s", level=4, clean_start=False)
    sub.send(Subscribe(1, [Subscription("a", 1)]))
    sub.received()
    sub.lose()
    pub = connected(broker, "p", level=4)
    pub.send(Publish("a", b"while away", 1, packet_id=1))
    again = Peer(broker, 4)
    assert again.connect("s", clean_start=False).session_present is True
    [msg] = publishes(again.received())
    assert msg.payload == b"while away"


def test_a_clean_session_discards_the_previous_one():
    """[MQTT-3.1.2-6]"""
    broker, _ = make_broker()
    sub = connected(broker, "s", level=4, clean_start=False)
    sub.send(Subscribe(1, [Subscription("a", 1)]))
    sub.lose()
    again = Peer(broker, 4)
    assert again.connect("s", clean_start=True).session_present is False
    assert broker.trie.count == 0


def test_a_session_ends_when_its_expiry_interval_passes():
    broker, clock = make_broker()
    sub = connected(broker, "s", clean_start=False,
                    properties=Properties(session_expiry_interval=5))
    sub.send(Subscribe(1, [Subscription("a", 1)]))
    sub.lose()
    clock.advance(4)
    assert ("", "s") in broker.sessions
    clock.advance(2)
    assert ("", "s") not in broker.sessions
    assert broker.trie.count == 0


def test_a_takeover_sends_the_old_mqtt5_connection_session_taken_over():
    """[MQTT-3.1.4-3]"""
    broker, _ = make_broker()
    old = connected(broker, "same")
    connected(broker, "same")
    [packet] = old.received()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x8E
    assert old.link.closed


def test_a_takeover_closes_the_old_311_connection_without_a_packet():
    broker, _ = make_broker()
    old = connected(broker, "same", level=4)
    connected(broker, "same", level=4)
    assert old.received() == []
    assert old.link.closed


def test_an_empty_client_id_gets_an_assigned_identifier():
    """[MQTT-3.2.2-16]"""
    broker, _ = make_broker()
    connack = Peer(broker).connect("")
    assigned = connack.properties.assigned_client_identifier
    assert assigned and ("", assigned) in broker.sessions


def test_the_keepalive_cap_is_announced_and_enforced():
    """[MQTT-3.2.2-21] [MQTT-3.1.2-24]"""
    broker, clock = make_broker(max_keepalive=10)
    peer = Peer(broker)
    connack = peer.connect("k", keep_alive=600)
    assert connack.properties.server_keep_alive == 10
    clock.advance(14)
    assert not peer.link.closed
    clock.advance(2)
    [packet] = peer.received()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x8D
    assert peer.link.closed


def test_a_311_client_beyond_the_keepalive_cap_is_refused_as_mosquitto_does():
    """3.1.1 has no server keep alive to tell the client, so 0 or more than the cap is refused
    with return code 2 (identifier rejected), as Mosquitto's max_keepalive does."""
    broker, _ = make_broker(max_keepalive=10)
    for keep_alive in (0, 11):
        peer = Peer(broker, 4)
        assert peer.connect("k", keep_alive=keep_alive).reason_code == 2
        assert peer.link.closed
    assert Peer(broker, 4).connect("k", keep_alive=10).reason_code == 0


def test_a_client_exceeding_our_receive_maximum_is_disconnected():
    """[MQTT-3.3.4-9]: QoS 2 messages not yet released count against it."""
    broker, _ = make_broker(max_inflight=3)
    peer = connected(broker, "greedy")
    for pid in range(1, 4):
        peer.send(Publish("x", b"", 2, packet_id=pid))
    assert all(isinstance(p, Pubrec) for p in peer.received())
    peer.send(Publish("x", b"", 2, packet_id=4))
    [packet] = peer.received()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x93


def test_a_resent_qos2_message_is_not_delivered_twice():
    """[MQTT-4.3.3-10]"""
    broker, _ = make_broker()
    sub = connected(broker, "s")
    sub.send(Subscribe(1, [Subscription("x", 2)]))
    sub.received()
    pub = connected(broker, "p")
    pub.send(Publish("x", b"once", 2, packet_id=9))
    pub.send(Publish("x", b"once", 2, dup=True, packet_id=9))
    assert [type(p) for p in pub.received()] == [Pubrec, Pubrec]
    assert len(publishes(sub.received())) == 1
    pub.send(Pubrel(9))
    assert isinstance(pub.received()[0], Pubcomp)
    pub.send(Publish("x", b"again", 2, packet_id=9))
    assert len(publishes(sub.received())) == 1


@pytest.mark.parametrize("level", [4, 5])
def test_a_pubrel_resent_after_a_lost_pubcomp_is_completed_again(level):
    # MQTT 5 offers 0x92 "packet identifier not found"; Mosquitto answers a plain PUBCOMP to
    # what is ordinary recovery, and so does Roost.
    broker, _ = make_broker()
    props = Properties(session_expiry_interval=60) if level == 5 else None
    pub = connected(broker, "p", level, clean_start=False, properties=props)
    pub.send(Publish("x", b"once", 2, packet_id=4))
    pub.send(Pubrel(4))
    assert pub.received()[-1] == Pubcomp(4)
    pub.lose()
    again = connected(broker, "p", level, clean_start=False, properties=props)
    again.send(Pubrel(4))
    assert again.received() == [Pubcomp(4)]


def test_outgoing_qos1_respects_the_client_receive_maximum_and_queues_the_rest():
    broker, _ = make_broker()
    sub = connected(broker, "s", properties=Properties(receive_maximum=2))
    sub.send(Subscribe(1, [Subscription("x", 1)]))
    sub.received()
    pub = connected(broker, "p")
    for i in range(5):
        pub.send(Publish("x", str(i).encode(), 1, packet_id=i + 1))
    first = publishes(sub.received())
    assert [m.payload for m in first] == [b"0", b"1"]
    sub.send(Puback(first[0].packet_id))
    assert [m.payload for m in publishes(sub.received())] == [b"2"]


def test_unacknowledged_messages_are_resent_with_dup_on_reconnect():
    """[MQTT-4.4.0-1] [MQTT-3.3.1-1]"""
    broker, _ = make_broker()
    sub = connected(broker, "s", clean_start=False,
                    properties=Properties(session_expiry_interval=60))
    sub.send(Subscribe(1, [Subscription("x", 2)]))
    sub.received()
    pub = connected(broker, "p")
    pub.send(Publish("x", b"q1", 1, packet_id=1))
    pub.send(Publish("x", b"q2", 2, packet_id=2))
    sent = publishes(sub.received())
    assert [m.dup for m in sent] == [False, False]
    sub.send(Pubrec(sent[1].packet_id))
    assert isinstance(sub.received()[0], Pubrel)
    sub.lose()
    again = Peer(broker)
    assert again.connect("s", clean_start=False).session_present
    packets = again.received()
    assert isinstance(packets[0], Publish) and packets[0].dup and packets[0].packet_id == sent[0].packet_id
    assert isinstance(packets[1], Pubrel) and packets[1].packet_id == sent[1].packet_id


def test_the_offline_queue_drops_new_messages_beyond_its_limit():
    broker, _ = make_broker(max_queued_messages=3)
    sub = connected(broker, "s", level=4, clean_start=False)
    sub.send(Subscribe(1, [Subscription("x", 1)]))
    sub.lose()
    pub = connected(broker, "p")
    for i in range(5):
        pub.send(Publish("x", str(i).encode(), 1, packet_id=i + 1))
    again = Peer(broker, 4)
    again.connect("s", clean_start=False)
    assert [m.payload for m in publishes(again.received())] == [b"0", b"1", b"2"]
    assert broker.stats.dropped == 2


def test_queued_messages_whose_expiry_passed_are_not_delivered():
    """[MQTT-3.3.2-5]"""
    broker, clock = make_broker()
    sub = connected(broker, "s", clean_start=False,
                    properties=Properties(session_expiry_interval=100))
    sub.send(Subscribe(1, [Subscription("x", 1)]))
    sub.lose()
    pub = connected(broker, "p")
    pub.send(Publish("x", b"short", 1, packet_id=1,
                     properties=Properties(message_expiry_interval=5)))
    pub.send(Publish("x", b"long", 1, packet_id=2,
                     properties=Properties(message_expiry_interval=50)))
    clock.advance(10)
    again = Peer(broker)
    again.connect("s", clean_start=False)
    [msg] = publishes(again.received())
    assert msg.payload == b"long"
    # [MQTT-3.3.2-6]: the interval is counted down by the time spent waiting.
    assert msg.properties.message_expiry_interval == 40


def test_a_publish_above_the_maximum_qos_is_refused():
    """[MQTT-3.2.2-11]"""
    broker, _ = make_broker(max_qos=1)
    peer = Peer(broker)
    assert peer.connect("q").properties.maximum_qos == 1
    peer.send(Publish("x", b"", 2, packet_id=1))
    [packet] = peer.received()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x9B


def test_the_connack_announces_the_server_capabilities_with_advertise_defaults():
    broker, _ = make_broker(max_inflight=50, max_packet_size=4096, topic_alias_maximum=7,
                            advertise_defaults=True)
    props = Peer(broker).connect("caps").properties
    assert props.receive_maximum == 50
    assert props.maximum_packet_size == 4096
    assert props.topic_alias_maximum == 7
    assert props.wildcard_subscription_available == 1
    assert props.subscription_identifier_available == 1
    assert props.shared_subscription_available == 1


def test_a_message_larger_than_the_client_maximum_packet_size_is_not_sent():
    """[MQTT-3.1.2-25]"""
    broker, _ = make_broker()
    sub = connected(broker, "s", properties=Properties(maximum_packet_size=64))
    sub.send(Subscribe(1, [Subscription("x", 1)]))
    sub.received()
    pub = connected(broker, "p")
    pub.send(Publish("x", b"a" * 100, 1, packet_id=1))
    pub.send(Publish("x", b"small", 1, packet_id=2))
    assert [m.payload for m in publishes(sub.received())] == [b"small"]


def test_an_unknown_protocol_version_gets_connack_return_code_1():
    """[MQTT-3.1.2-2]"""
    broker, _ = make_broker()
    peer = Peer(broker, 4)
    peer.conn.data_received(b"\x10\x0d\x00\x04MQTT\x07\x02\x00\x3c\x00\x01a")
    [packet] = peer.received()
    assert isinstance(packet, Connack) and packet.reason_code == 1
    assert peer.link.closed


def test_a_malformed_packet_after_connect_gets_disconnect_malformed_in_mqtt5():
    broker, _ = make_broker()
    peer = connected(broker, "bad")
    peer.send(b"\x30\x02\x00\x05")  # topic length runs past the packet
    [packet] = peer.received()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x81
    assert peer.link.closed


def test_a_packet_above_the_maximum_packet_size_gets_disconnect_packet_too_large():
    broker, _ = make_broker(max_packet_size=100)
    peer = connected(broker, "big")
    peer.send(Publish("x", b"a" * 200))
    [packet] = peer.received()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x95


def test_the_session_expiry_cap_applies_to_311_persistent_sessions():
    """Like Mosquitto's persistent_client_expiration: clean session 0 is not forever."""
    broker, clock = make_broker(max_session_expiry=3600)
    sub = connected(broker, "old-client", level=4, clean_start=False)
    sub.send(Subscribe(1, [Subscription("a", 1)]))
    sub.lose()
    clock.advance(3599)
    assert ("", "old-client") in broker.sessions
    clock.advance(2)
    assert ("", "old-client") not in broker.sessions


def test_an_mqtt5_client_asking_for_longer_than_the_cap_is_told_in_connack():
    """The CONNACK carries the interval the server uses when it differs (section 3.2.2.3.2)."""
    broker, clock = make_broker(max_session_expiry=600)
    peer = Peer(broker)
    connack = peer.connect("greedy", clean_start=False, properties=Properties(session_expiry_interval=0xFFFFFFFF))
    assert connack.properties.session_expiry_interval == 600
    peer.lose()
    clock.advance(601)
    assert ("", "greedy") not in broker.sessions
    modest = Peer(broker).connect("modest", clean_start=False, properties=Properties(session_expiry_interval=60))
    assert modest.properties.session_expiry_interval is None  # what it asked for: nothing to say


def test_a_message_that_expired_in_the_queue_used_up_its_packet_id_as_in_mosquitto():
    """Mosquitto numbers a QoS 1 message when it is queued: after one expired unsent, the
    next message gets the following id, not the expired one's."""
    broker, clock = make_broker()
    session = Properties(session_expiry_interval=1000)
    sub = connected(broker, "s", clean_start=False, properties=session)
    sub.send(Subscribe(1, [Subscription("t", 1)]))
    sub.received()
    sub.lose()
    pub = connected(broker, "p")
    pub.send(Publish("t", b"old", 1, packet_id=7, properties=Properties(message_expiry_interval=1)))
    clock.advance(2)
    sub = connected(broker, "s", clean_start=False, properties=session)
    assert [p for p in sub.received() if isinstance(p, Publish)] == []
    pub.send(Publish("t", b"new", 1, packet_id=8))
    [message] = [p for p in sub.received() if isinstance(p, Publish)]
    assert message.payload == b"new" and message.packet_id == 2
