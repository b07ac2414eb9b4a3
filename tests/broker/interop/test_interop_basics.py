"""Publish/subscribe basics against the real broker process with paho-mqtt 3.1.1 and 5.0."""

from __future__ import annotations

import pytest

from broker.mqtt import Disconnect, Subscribe, Subscription


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_a_subscriber_receives_what_a_publisher_sends(shared_broker, client_factory, unique, version, qos):
    sub = client_factory(shared_broker.port, version=version).connect()
    sub.subscribe(unique + "/#", qos)
    pub = client_factory(shared_broker.port, version=version).connect()
    pub.publish(unique + "/a", b"hello", qos)
    [msg] = sub.expect(1)
    assert (msg.topic, msg.payload, msg.qos) == (unique + "/a", b"hello", qos)


def test_the_delivered_qos_is_the_lower_of_publish_and_subscription(shared_broker, client_factory, unique):
    """[MQTT-3.8.4-8] the granted QoS caps what the subscriber gets."""
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe(unique, 1)
    pub = client_factory(shared_broker.port).connect()
    pub.publish(unique, b"x", 2)
    assert sub.expect(1)[0].qos == 1


def test_a_plus_wildcard_matches_exactly_one_level(shared_broker, client_factory, unique):
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe(unique + "/+/temp")
    pub = client_factory(shared_broker.port).connect()
    pub.publish(unique + "/a/b/temp", b"no")
    pub.publish(unique + "/a/temp", b"yes")
    [msg] = sub.expect(1)
    assert msg.payload == b"yes"
    sub.expect_none(0.3)


def test_a_hash_wildcard_matches_the_parent_level_too(shared_broker, client_factory, unique):
    """[MQTT-4.7.1-2] "sport/#" also matches "sport"."""
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe(unique + "/#")
    pub = client_factory(shared_broker.port).connect()
    pub.publish(unique, b"parent")
    assert sub.expect(1)[0].payload == b"parent"


def test_leading_wildcards_never_match_dollar_topics(shared_broker, client_factory):
    """[MQTT-4.7.2-1]"""
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe("#")
    sub.subscribe("+/broker/uptime")
    sub.expect_none(1.5)  # $SYS is refreshed every second by the fixture


def test_sys_topics_report_the_broker_version_and_counters(shared_broker, client_factory):
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe("$SYS/broker/#")
    topics = {m.topic: m.payload for m in sub.collect(1.5)}
    assert topics["$SYS/broker/version"].startswith(b"roost")
    for name in ("uptime", "clients/connected", "messages/received", "bytes/sent",
                 "subscriptions/count", "retained messages/count"):
        assert "$SYS/broker/" + name in topics


def test_unsubscribing_stops_delivery(shared_broker, client_factory, unique):
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe(unique)
    assert sub.unsubscribe(unique)[0] == 0
    pub = client_factory(shared_broker.port).connect()
    pub.publish(unique, b"x", 1)
    sub.expect_none(0.3)


def test_unsubscribing_from_an_unknown_filter_answers_no_subscription_existed(shared_broker, client_factory, unique):
    sub = client_factory(shared_broker.port).connect()
    assert sub.unsubscribe(unique)[0] == 0x11


def test_overlapping_subscriptions_deliver_one_copy_at_the_highest_qos(shared_broker, client_factory, unique):
    """[MQTT-3.3.4-2]"""
    sub = client_factory(shared_broker.port).connect()
    sub.subscribe(unique + "/#", 0)
    sub.subscribe(unique + "/+", 1)
    pub = client_factory(shared_broker.port).connect()
    pub.publish(unique + "/x", b"once", 1)
    [msg] = sub.expect(1)
    assert msg.qos == 1
    sub.expect_none(0.3)


def test_an_invalid_filter_closes_the_connection_as_mosquitto_does(shared_broker, raw_factory, unique):
    for level in (4, 5):
        raw = raw_factory(shared_broker.port, level)
        assert raw.connect().reason_code == 0
        raw.send(Subscribe(7, [Subscription(unique + "/ok", 1), Subscription(unique + "/a#", 0)]))
        if level == 5:
            assert raw.receive() == Disconnect(0x81)
        assert raw.closed(2)
