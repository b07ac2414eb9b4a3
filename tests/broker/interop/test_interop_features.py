"""Sessions, retained messages, wills and MQTT 5 extras against the real broker process."""

from __future__ import annotations

import time

import pytest
from paho.mqtt.packettypes import PacketTypes

from tests.broker.conftest import props

PUBLISH = PacketTypes.PUBLISH
CONNECT = PacketTypes.CONNECT


@pytest.mark.parametrize("version", [4, 5])
def test_a_retained_message_reaches_a_later_subscriber(shared_broker, client_factory, unique, version):
    """[MQTT-3.3.1-6]"""
    pub = client_factory(shared_broker.port, version=version).connect()
    pub.publish(unique, b"on", 1, retain=True)
    sub = client_factory(shared_broker.port, version=version).connect()
    sub.subscribe(unique, 1)
    [msg] = sub.expect(1)
    assert (msg.payload, msg.retain) == (b"on", True)


def test_a_newer_retained_message_replaces_the_old_one(shared_broker, client_factory, unique):
    pub = client_factory(shared_broker.port).connect()
    pub.publish(unique, b"old", 1, retain=True)
    pub.publish(unique, b"new", 1, retain=True)
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe(unique, 1)
    assert [m.payload for m in sub.expect(1)] == [b"new"]
    sub.expect_none(0.3)


def test_a_forwarded_message_has_retain_cleared_for_311_subscribers(shared_broker, client_factory, unique):
    """3.1.1 [MQTT-3.3.1-9]: only messages sent because of a new subscription carry RETAIN."""
    sub = client_factory(shared_broker.port, version=4).connect()
    sub.subscribe(unique, 0)
    client_factory(shared_broker.port).connect().publish(unique, b"x", 0, retain=True)
    assert sub.expect(1)[0].retain is False


def test_a_persistent_session_receives_what_was_published_while_it_was_away(shared_broker, client_factory, unique):
    sub = client_factory(shared_broker.port, client_id=unique + "-s", version=4)
    sub.connect(clean=False)
    sub.subscribe(unique, 1)
    sub.disconnect()
    client_factory(shared_broker.port).connect().publish(unique, b"queued", 1)
    again = client_factory(shared_broker.port, client_id=unique + "-s", version=4)
    again.connect(clean=False)
    assert again.session_present
    assert again.expect(1)[0].payload == b"queued"


def test_a_session_with_expiry_0_ends_with_its_connection(shared_broker, client_factory, unique):
    sub = client_factory(shared_broker.port, client_id=unique).connect(clean=False)
    sub.subscribe(unique, 1)
    sub.disconnect()
    again = client_factory(shared_broker.port, client_id=unique).connect(clean=False)
    assert not again.session_present


def test_a_second_connection_with_the_same_id_takes_over(shared_broker, client_factory, unique):
    """[MQTT-3.1.4-3]: the first MQTT 5 client gets DISCONNECT 0x8E."""
    first = client_factory(shared_broker.port, client_id=unique).connect()
    client_factory(shared_broker.port, client_id=unique).connect()
    assert first.disconnected.wait(5)
    assert first.disconnect_reason.value == 0x8E
    first.client.loop_stop()


def test_a_will_is_published_when_a_client_vanishes(shared_broker, client_factory, unique):
    watcher = client_factory(shared_broker.port).connect()
    watcher.subscribe(unique)
    dying = client_factory(shared_broker.port, version=4).connect(will=(unique, b"gone", 0, False))
    dying.drop()
    assert watcher.expect(1)[0].payload == b"gone"


def test_a_will_is_not_published_after_a_normal_disconnect(shared_broker, client_factory, unique):
    watcher = client_factory(shared_broker.port).connect()
    watcher.subscribe(unique)
    leaving = client_factory(shared_broker.port).connect(will=(unique, b"gone", 0, False))
    leaving.disconnect()
    watcher.expect_none(0.5)


def test_a_will_is_published_on_disconnect_with_will_message(shared_broker, client_factory, unique):
    watcher = client_factory(shared_broker.port).connect()
    watcher.subscribe(unique)
    leaving = client_factory(shared_broker.port).connect(will=(unique, b"gone", 0, False))
    leaving.disconnect(reason=0x04)
    assert watcher.expect(1)[0].payload == b"gone"


def test_a_silent_client_is_dropped_after_one_and_a_half_keepalives_and_its_will_sent(shared_broker, raw_factory, client_factory, unique):
    """[MQTT-3.1.2-24]"""
    from broker.mqtt import Will

    watcher = client_factory(shared_broker.port).connect()
    watcher.subscribe(unique)
    raw = raw_factory(shared_broker.port, level=4)
    started = time.monotonic()
    raw.connect("silent", keep_alive=1, will=Will(unique, b"timeout"))
    assert raw.closed(timeout=5)
    assert 1.4 < time.monotonic() - started < 3.5
    assert watcher.expect(1)[0].payload == b"timeout"


def test_a_shared_subscription_splits_messages_between_members(shared_broker, client_factory, unique):
    members = [client_factory(shared_broker.port).connect() for _ in range(2)]
    for m in members:
        m.subscribe(f"$share/grp/{unique}/#", 1)
    pub = client_factory(shared_broker.port).connect()
    for i in range(10):
        pub.publish(unique + "/job", str(i).encode(), 1)
    got = [m.collect(1.0) for m in members]
    assert sorted(int(x.payload) for g in got for x in g) == list(range(10))
    assert all(len(g) == 5 for g in got)


def test_mqtt5_properties_travel_unchanged_to_the_subscriber(shared_broker, client_factory, unique):
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe(unique)
    p = props(PUBLISH, PayloadFormatIndicator=1, ContentType="application/json",
              ResponseTopic=unique + "/reply", CorrelationData=b"id-1",
              UserProperty=[("a", "1"), ("b", "2")])
    client_factory(shared_broker.port).connect().publish(unique, b"{}", 1, properties=p)
    got = sub.expect(1)[0].properties
    assert got.PayloadFormatIndicator == 1
    assert got.ContentType == "application/json"
    assert got.ResponseTopic == unique + "/reply"
    assert got.CorrelationData == b"id-1"
    assert got.UserProperty == [("a", "1"), ("b", "2")]


def test_a_subscription_identifier_comes_back_with_matching_messages(shared_broker, client_factory, unique):
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe_with_id(unique + "/#", 42)
    client_factory(shared_broker.port).connect().publish(unique + "/x", b"1")
    assert sub.expect(1)[0].properties.SubscriptionIdentifier == [42]


def test_no_local_suppresses_the_publishers_own_messages(shared_broker, client_factory, unique):
    me = client_factory(shared_broker.port).connect()
    me.subscribe(unique, 0, noLocal=True)
    me.publish(unique, b"mine")
    me.expect_none(0.5)


def test_retain_handling_2_sends_no_retained_messages_on_subscribe(shared_broker, client_factory, unique):
    client_factory(shared_broker.port).connect().publish(unique, b"r", 0, retain=True)
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe(unique, 0, retainHandling=2)
    sub.expect_none(0.5)


def test_message_expiry_is_counted_down_for_queued_messages(shared_broker, client_factory, unique):
    """[MQTT-3.3.2-6]"""
    session = props(CONNECT, SessionExpiryInterval=60)
    sub = client_factory(shared_broker.port, client_id=unique).connect(clean=False, properties=session)
    sub.subscribe(unique, 1)
    sub.disconnect()
    pub = client_factory(shared_broker.port).connect()
    pub.publish(unique, b"x", 1, properties=props(PUBLISH, MessageExpiryInterval=30))
    time.sleep(2.1)
    again = client_factory(shared_broker.port, client_id=unique).connect(clean=False, properties=session)
    assert again.session_present
    left = again.expect(1)[0].properties.MessageExpiryInterval
    assert 26 <= left <= 28


def test_request_response_information_is_answered_in_the_connack(shared_broker, client_factory, unique):
    c = client_factory(shared_broker.port, client_id=unique)
    c.connect(properties=props(CONNECT, RequestResponseInformation=1))
    assert c.connack[2].ResponseInformation.endswith(unique)


def test_a_publisher_topic_alias_is_resolved(shared_broker, client_factory, unique):
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe(unique)
    pub = client_factory(shared_broker.port).connect()
    pub.publish(unique, b"1", properties=props(PUBLISH, TopicAlias=3))
    pub.publish("", b"2", properties=props(PUBLISH, TopicAlias=3))
    assert [(m.topic, m.payload) for m in sub.expect(2)] == [(unique, b"1"), (unique, b"2")]
