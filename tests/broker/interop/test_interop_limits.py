"""Limits, retransmission and MQTT 5 negotiation against the real broker process."""

from __future__ import annotations

import time

from paho.mqtt.packettypes import PacketTypes

from broker.mqtt import (
    Disconnect,
    Properties,
    Puback,
    Publish,
    Pubrec,
    Subscribe,
    Subscription,
    Will,
)
from tests.broker.conftest import props


def test_the_server_keep_alive_caps_what_the_client_asked_for(start_broker, client_factory):
    """[MQTT-3.2.2-21]"""
    broker = start_broker("--max-keepalive", "5")
    c = client_factory(broker.port).connect(keepalive=600)
    assert c.connack[2].ServerKeepAlive == 5


def test_an_empty_client_id_is_assigned_one_in_the_connack(shared_broker, client_factory):
    """[MQTT-3.2.2-16]"""
    c = client_factory(shared_broker.port, client_id="").connect()
    assert c.connack[2].AssignedClientIdentifier.startswith("auto-")


def test_a_client_exceeding_the_receive_maximum_gets_disconnect_0x93(start_broker, raw_factory):
    """[MQTT-3.3.4-9]"""
    broker = start_broker("--max-inflight", "2")
    raw = raw_factory(broker.port)
    assert raw.connect("greedy").properties.receive_maximum == 2
    for pid in (1, 2, 3):
        raw.send(Publish("x", b"", 2, packet_id=pid))
    assert isinstance(raw.receive(), Pubrec)
    assert isinstance(raw.receive(), Pubrec)
    packet = raw.receive()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x93


def test_an_unacknowledged_message_is_resent_with_dup_after_reconnect(shared_broker, raw_factory, client_factory, unique):
    """[MQTT-4.4.0-1]"""
    sub = raw_factory(shared_broker.port, level=4)
    sub.connect(unique, clean_start=False)
    sub.send(Subscribe(1, [Subscription(unique, 1)]))
    sub.receive()
    client_factory(shared_broker.port).connect().publish(unique, b"once", 1)
    first = sub.receive()
    assert isinstance(first, Publish) and not first.dup
    sub.close()  # no PUBACK
    again = raw_factory(shared_broker.port, level=4)
    assert again.connect(unique, clean_start=False).session_present
    resent = again.receive()
    assert (resent.payload, resent.packet_id, resent.dup) == (b"once", first.packet_id, True)
    again.send(Puback(resent.packet_id))
    again.close()
    third = raw_factory(shared_broker.port, level=4)
    assert third.connect(unique, clean_start=False).session_present
    # Acknowledged means gone: nothing is resent a second time.
    assert third.receive(timeout=0.5) is None


def test_a_message_above_the_client_maximum_packet_size_is_not_sent(shared_broker, raw_factory, client_factory, unique):
    """[MQTT-3.1.2-25]"""
    small = raw_factory(shared_broker.port)
    small.connect(unique, properties=Properties(maximum_packet_size=200))
    small.send(Subscribe(1, [Subscription(unique, 0)]))
    small.receive()
    pub = client_factory(shared_broker.port).connect()
    pub.publish(unique, b"x" * 500)
    pub.publish(unique, b"fits")
    packet = small.receive()
    assert isinstance(packet, Publish) and packet.payload == b"fits"


def test_topic_aliases_are_sent_to_a_client_that_allows_them(shared_broker, raw_factory, client_factory, unique):
    sub = raw_factory(shared_broker.port)
    sub.connect(unique, properties=Properties(topic_alias_maximum=5))
    sub.send(Subscribe(1, [Subscription(unique, 0)]))
    sub.receive()
    pub = client_factory(shared_broker.port).connect()
    pub.publish(unique, b"1")
    pub.publish(unique, b"2")
    first, second = sub.receive(), sub.receive()
    assert (first.topic, first.properties.topic_alias) == (unique, 1)
    assert (second.topic, second.properties.topic_alias, second.payload) == ("", 1, b"2")


def test_a_delayed_will_is_sent_after_its_delay(shared_broker, client_factory, unique):
    watcher = client_factory(shared_broker.port).connect()
    watcher.subscribe(unique)
    dying = client_factory(shared_broker.port, client_id=unique)
    dying.connect(properties=props(PacketTypes.CONNECT, SessionExpiryInterval=30),
                  will=(unique, b"late", 0, False),
                  will_properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=1))
    started = time.monotonic()
    dying.drop()
    assert watcher.expect(1, timeout=5)[0].payload == b"late"
    assert time.monotonic() - started >= 0.9


def test_a_delayed_will_is_cancelled_when_the_client_returns_in_time(shared_broker, client_factory, raw_factory, unique):
    watcher = client_factory(shared_broker.port).connect()
    watcher.subscribe(unique)
    raw = raw_factory(shared_broker.port)
    raw.connect(unique, clean_start=False, properties=Properties(session_expiry_interval=30),
                will=Will(unique, b"late", properties=Properties(will_delay_interval=2)))
    raw.close()
    time.sleep(0.3)
    back = raw_factory(shared_broker.port)
    assert back.connect(unique, clean_start=False,
                        properties=Properties(session_expiry_interval=30)).session_present
    watcher.expect_none(2.5)


def test_mqtt_3_1_clients_are_served_too(shared_broker, raw_factory, client_factory, unique):
    old = raw_factory(shared_broker.port, level=3)
    assert old.connect("mqisdp-client").reason_code == 0
    old.send(Subscribe(1, [Subscription(unique, 1)]))
    assert old.receive().reason_codes == [1]
    client_factory(shared_broker.port).connect().publish(unique, b"v3", 1)
    assert old.receive().payload == b"v3"
