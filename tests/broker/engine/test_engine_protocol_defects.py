"""Protocol defects found by running Mosquitto's broker tests against Roost (issue 15).

Each test stands on its own (client/broker pairs joined in memory), not on that suite.
"""

from __future__ import annotations

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
    Will,
)
from broker.mqtt.reason_codes import ReasonCode
from tests.broker.engine.engine_pairs import Peer, connected, make_broker


def publishes(packets):
    return [p for p in packets if isinstance(p, Publish)]


# ---- the first packet [MQTT-3.1.0-1] ---------------------------------------------------


def test_a_first_packet_that_is_not_connect_closes_the_connection_without_a_connack():
    broker, _ = make_broker()
    peer = Peer(broker, level=4)
    peer.send(b"\xc0\x00")  # PINGREQ
    assert peer.received() == []
    assert peer.link.closed


def test_a_first_publish_closes_the_connection_without_a_connack():
    broker, _ = make_broker()
    peer = Peer(broker, level=5)
    peer.send(b"\x30\x07\x00\x01t\x00abc")
    assert peer.received() == []
    assert peer.link.closed


def test_an_oversized_first_packet_closes_the_connection_without_a_connack():
    broker, _ = make_broker()
    peer = Peer(broker, level=4)
    peer.send(b"\x30\x80\x80\x80\x74" + b"\x01" * 64)
    assert peer.received() == []
    assert peer.link.closed


def test_an_unsupported_protocol_version_still_gets_connack_return_code_1():
    """[MQTT-3.1.2-2]: the one refusal before CONNECT is read that has an answer."""
    broker, _ = make_broker()
    peer = Peer(broker, level=4)
    peer.send(b"\x10\x0d\x00\x04MQTT\x09\x02\x00\x3c\x00\x01a")
    [connack] = peer.received()
    assert isinstance(connack, Connack) and connack.reason_code == 1
    assert peer.link.closed


# ---- 0x10 no matching subscribers ------------------------------------------------------


def test_an_mqtt5_puback_says_no_matching_subscribers_when_nothing_matched():
    broker, _ = make_broker()
    pub = connected(broker, "p")
    pub.send(Publish("nobody/listens", b"x", 1, packet_id=1))
    assert pub.received() == [Puback(1, ReasonCode.NO_MATCHING_SUBSCRIBERS)]


def test_a_retained_message_nobody_subscribed_to_gets_0x10_and_is_still_retained():
    broker, _ = make_broker()
    pub = connected(broker, "p")
    pub.send(Publish("kept/here", b"x", 1, retain=True, packet_id=1))
    assert pub.received() == [Puback(1, ReasonCode.NO_MATCHING_SUBSCRIBERS)]
    late = connected(broker, "late")
    late.send(Subscribe(1, [Subscription("kept/here", 0)]))
    assert [m.payload for m in publishes(late.received())] == [b"x"]


def test_an_mqtt5_puback_is_success_when_a_subscription_matched():
    broker, _ = make_broker()
    sub = connected(broker, "s")
    sub.send(Subscribe(1, [Subscription("some/+", 0)]))
    pub = connected(broker, "p")
    pub.send(Publish("some/one", b"x", 1, packet_id=1))
    assert pub.received() == [Puback(1, ReasonCode.SUCCESS)]


def test_a_shared_subscription_counts_as_a_matching_subscriber():
    broker, _ = make_broker()
    sub = connected(broker, "s")
    sub.send(Subscribe(1, [Subscription("$share/g/some/one", 0)]))
    pub = connected(broker, "p")
    pub.send(Publish("some/one", b"x", 1, packet_id=1))
    assert pub.received() == [Puback(1, ReasonCode.SUCCESS)]


def test_an_mqtt5_pubrec_stays_success_when_nothing_matched():
    """As Mosquitto, which routes QoS 2 only at PUBREL and so never knows at PUBREC."""
    broker, _ = make_broker()
    pub = connected(broker, "p")
    pub.send(Publish("nobody/listens", b"x", 2, packet_id=7))
    assert pub.received() == [Pubrec(7)]
    pub.send(Pubrel(7))
    assert pub.received() == [Pubcomp(7)]


def test_an_mqtt311_puback_has_no_reason_code_when_nothing_matched():
    broker, _ = make_broker()
    pub = connected(broker, "p", level=4)
    pub.send(Publish("nobody/listens", b"x", 1, packet_id=1))
    assert pub.received() == [Puback(1)]


# ---- MQTT 3.1 PUBREL with DUP ----------------------------------------------------------


def test_an_mqtt31_pubrel_with_the_dup_bit_is_completed():
    broker, _ = make_broker()
    pub = connected(broker, "legacy", level=3)
    pub.send(Publish("a", b"x", 2, packet_id=3))
    assert pub.received() == [Pubrec(3)]
    pub.send(b"\x6a\x02\x00\x03")  # PUBREL, DUP and QoS 1 as MQTT 3.1 resent it
    assert pub.received() == [Pubcomp(3)]
    assert not pub.link.closed


def test_an_mqtt311_pubrel_with_the_dup_bit_is_still_malformed():
    """[MQTT-3.6.1-1] (3.1.1): the PUBREL flags are 0010."""
    broker, _ = make_broker()
    pub = connected(broker, "modern", level=4)
    pub.send(Publish("a", b"x", 2, packet_id=3))
    pub.received()
    pub.send(b"\x6a\x02\x00\x03")
    assert pub.received() == []
    assert pub.link.closed


# ---- $share and $SYS as topic names ----------------------------------------------------


def test_publishing_to_a_share_topic_name_is_refused_and_the_connection_stays():
    broker, _ = make_broker()
    sub = connected(broker, "s")
    sub.send(Subscribe(1, [Subscription("$share/g/#", 1), Subscription("#", 1)]))
    sub.received()
    pub = connected(broker, "p")
    pub.send(Publish("$share/g/topic", b"x", 1, packet_id=1))
    assert pub.received() == [Puback(1, ReasonCode.NOT_AUTHORIZED)]
    assert not pub.link.closed
    assert publishes(sub.received()) == []


def test_publishing_to_sys_is_refused():
    broker, _ = make_broker()
    pub = connected(broker, "p")
    pub.send(Publish("$SYS/broker/uptime", b"x", 1, packet_id=1))
    assert pub.received() == [Puback(1, ReasonCode.NOT_AUTHORIZED)]
    assert not pub.link.closed


def test_a_bridge_may_publish_its_state_under_sys_as_into_mosquitto():
    # A Roost or Mosquitto bridge tells its remote "1"/"0" there (notifications true).
    broker, _ = make_broker()
    sub = connected(broker, "s")
    sub.send(Subscribe(1, [Subscription("$SYS/broker/connection/+/state", 1)]))
    sub.received()
    pub = connected(broker, "edge.bridge")
    pub.send(Publish("$SYS/broker/connection/edge.bridge/state", b"1", 1, retain=True, packet_id=1))
    pub.send(Publish("$SYS/broker/connection/edge/state/x", b"1", 1, packet_id=2))
    pub.send(Publish("$SYS/broker/connections/edge/state", b"1", 1, packet_id=3))
    assert pub.received() == [Puback(1), Puback(2, ReasonCode.NOT_AUTHORIZED),
                              Puback(3, ReasonCode.NOT_AUTHORIZED)]
    assert [m.payload for m in publishes(sub.received())] == [b"1"]
    late = connected(broker, "late")
    late.send(Subscribe(1, [Subscription("$SYS/broker/connection/#", 1)]))
    assert [m.retain for m in publishes(late.received())] == [True]


def test_publishing_to_another_dollar_topic_is_allowed():
    broker, _ = make_broker()
    sub = connected(broker, "s")
    sub.send(Subscribe(1, [Subscription("$app/x", 0)]))
    sub.received()
    pub = connected(broker, "p")
    pub.send(Publish("$app/x", b"x", 1, packet_id=1))
    assert pub.received() == [Puback(1)]
    assert [m.payload for m in publishes(sub.received())] == [b"x"]


def test_a_will_on_a_share_topic_name_is_refused_at_connect():
    broker, _ = make_broker()
    peer = Peer(broker)
    connack = peer.connect("w", will=Will("$share/g/t", b"gone"))
    assert connack.reason_code == ReasonCode.NOT_AUTHORIZED


# ---- Maximum Packet Size of a subscriber [MQTT-3.1.2-25] -------------------------------


def small_client(broker, client_id, maximum, alias_maximum=None):
    props = Properties(maximum_packet_size=maximum, topic_alias_maximum=alias_maximum)
    peer = connected(broker, client_id, properties=props)
    peer.send(Subscribe(1, [Subscription("t/x", 1)]))
    peer.received()
    return peer


def test_a_message_too_large_for_one_subscriber_is_dropped_for_it_alone_and_delivery_goes_on():
    broker, _ = make_broker()
    small = small_client(broker, "small", 40)
    big = connected(broker, "big")
    big.send(Subscribe(1, [Subscription("t/x", 1)]))
    big.received()
    pub = connected(broker, "p")
    pub.send(Publish("t/x", b"a" * 100, 1, packet_id=1))
    pub.send(Publish("t/x", b"fits", 1, packet_id=2))
    delivered = publishes(small.received())
    assert [m.payload for m in delivered] == [b"fits"]
    # The dropped one used up packet id 1, as in Mosquitto, which numbers a message when it
    # is queued for the client.
    assert delivered[0].packet_id == 2
    assert [m.payload for m in publishes(big.received())] == [b"a" * 100, b"fits"]
    assert not small.link.closed


def test_a_dropped_message_does_not_use_up_a_topic_alias_the_client_never_saw():
    broker, _ = make_broker()
    small = small_client(broker, "small", 40, alias_maximum=5)
    pub = connected(broker, "p")
    pub.send(Publish("t/x", b"a" * 100, 0))
    pub.send(Publish("t/x", b"fits", 0))
    pub.send(Publish("t/x", b"again", 0))
    first, second = publishes(small.received())
    # The first delivered message names the topic and sets up the alias it uses.
    assert (first.topic, first.payload, first.properties.topic_alias) == ("t/x", b"fits", 1)
    assert (second.topic, second.payload, second.properties.topic_alias) == ("", b"again", 1)


def test_a_message_that_fits_only_without_the_alias_property_is_sent_without_it():
    broker, _ = make_broker()
    # PUBLISH QoS 0 "t/x" + 4 bytes: 2 + 5 + 1 + 4 = 12 bytes; the alias adds 3.
    small = small_client(broker, "small", 12, alias_maximum=5)
    pub = connected(broker, "p")
    pub.send(Publish("t/x", b"abcd", 0))
    [msg] = publishes(small.received())
    assert (msg.topic, msg.payload, msg.properties) == ("t/x", b"abcd", None)


# ---- wills on takeover and on a Clean Start reconnect ----------------------------------


def will_watcher(broker):
    watcher = connected(broker, "watcher")
    watcher.send(Subscribe(1, [Subscription("will/#", 0)]))
    watcher.received()
    return watcher


def persistent(level):
    return {"clean_start": False} if level == 4 else {
        "clean_start": False, "properties": Properties(session_expiry_interval=60)}


def clean(level):
    return {"clean_start": True}


def takeover(broker, level, first, second):
    old = connected(broker, "device", level=level, will=Will("will/device", b"offline"),
                    **first(level))
    new = connected(broker, "device", level=level, **second(level))
    return old, new


def test_a_takeover_between_two_persistent_sessions_does_not_publish_the_old_will():
    for level in (4, 5):
        broker, _ = make_broker()
        watcher = will_watcher(broker)
        old, _new = takeover(broker, level, persistent, persistent)
        assert old.link.closed
        assert publishes(watcher.received()) == [], f"MQTT level {level}"


def test_a_takeover_by_a_clean_start_connection_publishes_the_old_will():
    for level in (4, 5):
        broker, _ = make_broker()
        watcher = will_watcher(broker)
        takeover(broker, level, persistent, clean)
        assert [m.payload for m in publishes(watcher.received())] == [b"offline"]


def test_a_takeover_of_a_session_that_ends_with_its_connection_publishes_the_old_will():
    for level in (4, 5):
        broker, _ = make_broker()
        watcher = will_watcher(broker)
        takeover(broker, level, clean, persistent)
        assert [m.payload for m in publishes(watcher.received())] == [b"offline"]


def test_the_taken_over_connection_is_told_session_taken_over():
    broker, _ = make_broker()
    old, _new = takeover(broker, 5, persistent, persistent)
    assert old.received() == [Disconnect(ReasonCode.SESSION_TAKEN_OVER)]


def delayed_will_client(broker):
    will = Will("will/device", b"offline", properties=Properties(will_delay_interval=10))
    device = connected(broker, "device", will=will, clean_start=False,
                       properties=Properties(session_expiry_interval=60))
    device.lose()


def test_a_clean_start_reconnect_inside_the_will_delay_cancels_the_will():
    """[MQTT-3.1.3-9]: a new connection before the delay passed; no will, even though
    the Clean Start ends the old session."""
    broker, clock = make_broker()
    watcher = will_watcher(broker)
    delayed_will_client(broker)
    connected(broker, "device", clean_start=True)
    clock.advance(30)
    assert publishes(watcher.received()) == []


def test_a_resuming_reconnect_inside_the_will_delay_cancels_the_will():
    broker, clock = make_broker()
    watcher = will_watcher(broker)
    delayed_will_client(broker)
    connected(broker, "device", clean_start=False,
              properties=Properties(session_expiry_interval=60))
    clock.advance(30)
    assert publishes(watcher.received()) == []


def test_a_delayed_will_is_published_when_nobody_reconnects():
    broker, clock = make_broker()
    watcher = will_watcher(broker)
    delayed_will_client(broker)
    clock.advance(9)
    assert publishes(watcher.received()) == []
    clock.advance(2)
    assert [m.payload for m in publishes(watcher.received())] == [b"offline"]
