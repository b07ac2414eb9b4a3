"""Routing features on in-memory pairs: retained, wills, shared, MQTT 5 options, tenants."""

from __future__ import annotations

from broker.engine.interfaces import Action, Decision, Principal
from broker.engine.operations import Admin
from broker.engine.store import MemoryStore
from broker.mqtt import (
    Connect,
    Disconnect,
    Properties,
    Publish,
    StreamDecoder,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
    encode,
)
from tests.broker.engine.engine_pairs import Peer, connected, make_broker


def publishes(peer):
    return [p for p in peer.received() if isinstance(p, Publish)]


def subscribe(peer, *subs, properties=None):
    peer.send(Subscribe(1, list(subs), properties))
    packets = peer.received()
    assert isinstance(packets[0], Suback)
    peer.pending = packets[1:]
    return packets[0].reason_codes


def test_an_invalid_filter_closes_the_connection_before_any_filter_of_the_packet_takes_effect():
    broker, _ = make_broker()
    peer = connected(broker, "s", clean_start=False, properties=Properties(session_expiry_interval=60))
    peer.send(Subscribe(1, [Subscription("ok/+", 1), Subscription("a/#/b", 0)]))
    assert peer.received() == [Disconnect(0x81)] and peer.link.closed
    session = broker.sessions[("", "s")]
    assert not session.subscriptions
    for level in (4, 5):
        peer = connected(broker, f"u{level}", level)
        peer.send(Unsubscribe(2, ["ok/+", "a" + "/a" * 201]))  # past the 200-separator limit
        assert peer.received() == ([Disconnect(0x81)] if level == 5 else []) and peer.link.closed


def test_the_platform_refuses_an_invalid_filter_alone_and_keeps_the_connection():
    broker, _ = make_broker(invalid_filter_disconnects=False)
    peer = connected(broker, "s")
    assert subscribe(peer, Subscription("a/#/b", 0), Subscription("ok/+", 1),
                     Subscription("a" + "/a" * 201)) == [0x8F, 1, 0x8F]
    peer.send(Unsubscribe(2, ["#/x", "ok/+"]))
    assert peer.received() == [Unsuback(2, [0x8F, 0])]
    assert not peer.link.closed


def test_a_retained_message_is_delivered_on_subscribe_with_retain_set():
    """[MQTT-3.3.1-6] [MQTT-3.3.1-8]"""
    broker, _ = make_broker()
    pub = connected(broker, "p")
    pub.send(Publish("r/1", b"state", 1, retain=True, packet_id=1))
    sub = connected(broker, "s")
    subscribe(sub, Subscription("r/#", 1))
    [msg] = publishes(sub)
    assert (msg.topic, msg.payload, msg.retain) == ("r/1", b"state", True)


def test_an_empty_retained_payload_clears_the_retained_message():
    """[MQTT-3.3.1-6] [MQTT-3.3.1-7]"""
    broker, _ = make_broker()
    pub = connected(broker, "p")
    pub.send(Publish("r/1", b"state", 0, retain=True))
    pub.send(Publish("r/1", b"", 0, retain=True))
    sub = connected(broker, "s")
    subscribe(sub, Subscription("r/#", 1))
    assert publishes(sub) == []
    assert broker.retained.count == 0


def test_retain_handling_1_sends_retained_messages_only_for_a_new_subscription():
    broker, _ = make_broker()
    connected(broker, "p").send(Publish("r", b"x", 0, retain=True))
    sub = connected(broker, "s")
    subscribe(sub, Subscription("r", 0, retain_handling=1))
    assert len(publishes(sub)) == 1
    subscribe(sub, Subscription("r", 0, retain_handling=1))
    assert publishes(sub) == []


def test_retain_handling_2_never_sends_retained_messages():
    broker, _ = make_broker()
    connected(broker, "p").send(Publish("r", b"x", 0, retain=True))
    sub = connected(broker, "s")
    subscribe(sub, Subscription("r", 0, retain_handling=2))
    assert publishes(sub) == []


def test_retain_as_published_keeps_the_retain_flag_on_forwarded_messages():
    broker, _ = make_broker()
    keep = connected(broker, "keep")
    subscribe(keep, Subscription("r", 0, retain_as_published=True))
    clear = connected(broker, "clear")
    subscribe(clear, Subscription("r", 0))
    connected(broker, "p").send(Publish("r", b"x", 0, retain=True))
    assert publishes(keep)[0].retain is True
    assert publishes(clear)[0].retain is False


def test_no_local_keeps_a_client_from_receiving_its_own_messages():
    """[MQTT-3.8.3-3]"""
    broker, _ = make_broker()
    me = connected(broker, "me")
    subscribe(me, Subscription("chat", 0, no_local=True))
    me.send(Publish("chat", b"mine"))
    assert publishes(me) == []
    connected(broker, "other").send(Publish("chat", b"theirs"))
    assert [m.payload for m in publishes(me)] == [b"theirs"]


def test_subscription_identifiers_of_every_matching_subscription_are_sent():
    """[MQTT-3.3.4-3]"""
    broker, _ = make_broker()
    sub = connected(broker, "s")
    subscribe(sub, Subscription("a/#"), properties=Properties(subscription_identifiers=[5]))
    subscribe(sub, Subscription("a/+"), properties=Properties(subscription_identifiers=[9]))
    connected(broker, "p").send(Publish("a/b", b"x"))
    [msg] = publishes(sub)
    assert sorted(msg.properties.subscription_identifiers) == [5, 9]


def test_mqtt5_message_properties_are_forwarded_unchanged():
    """[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-20]"""
    broker, _ = make_broker()
    sub = connected(broker, "s")
    subscribe(sub, Subscription("req"))
    props = Properties(payload_format_indicator=1, content_type="text/plain",
                       response_topic="resp/1", correlation_data=b"\x01\x02",
                       user_properties=[("k", "v"), ("k", "w")])
    connected(broker, "p").send(Publish("req", b"x", properties=props))
    got = publishes(sub)[0].properties
    assert (got.payload_format_indicator, got.content_type, got.response_topic,
            got.correlation_data, got.user_properties) == (
        1, "text/plain", "resp/1", b"\x01\x02", [("k", "v"), ("k", "w")])


def test_a_will_goes_out_with_its_properties_in_the_order_they_came_less_the_delay():
    """As Mosquitto forwards them (its test 07-will-properties); the order has no meaning."""
    broker, _ = make_broker()
    watcher = connected(broker, "w")
    subscribe(watcher, Subscription("wills/#"))
    came = Properties(user_properties=[("key1", "value1"), ("key2", "value2")], response_topic="response/topic",
                      correlation_data=b"data", will_delay_interval=0, payload_format_indicator=1,
                      content_type="application/test", order=(0x26, 0x08, 0x09, 0x18, 0x01, 0x03, 0x26))
    connected(broker, "d", will=Will("wills/d", b"gone", 0, properties=came)).lose()
    data = bytes(watcher.link.written)
    sent = (b"\x26\x00\x04key1\x00\x06value1" b"\x08\x00\x0eresponse/topic" b"\x09\x00\x04data" b"\x01\x01"
            b"\x03\x00\x10application/test" b"\x26\x00\x04key2\x00\x06value2")
    assert data.endswith(bytes([len(sent)]) + sent + b"gone"), data


def test_a_forwarded_publish_has_subscription_ids_first_and_the_expiry_last_as_in_mosquitto():
    broker, _ = make_broker()
    sub = connected(broker, "s")
    subscribe(sub, Subscription("req"), properties=Properties(subscription_identifiers=[7]))
    props = Properties(message_expiry_interval=60, content_type="t", user_properties=[("k", "v")])
    connected(broker, "p").send(Publish("req", b"x", properties=props))
    data = bytes(sub.link.written)
    sent = b"\x0b\x07" b"\x03\x00\x01t" b"\x26\x00\x01k\x00\x01v" b"\x02\x00\x00\x00\x3c"
    assert data.endswith(bytes([len(sent)]) + sent + b"x"), data


def test_an_incoming_topic_alias_stands_for_the_topic_it_was_set_with():
    """[MQTT-3.3.2-12]"""
    broker, _ = make_broker()
    sub = connected(broker, "s")
    subscribe(sub, Subscription("long/topic/name"))
    pub = connected(broker, "p")
    pub.send(Publish("long/topic/name", b"1", properties=Properties(topic_alias=1)))
    pub.send(Publish("", b"2", properties=Properties(topic_alias=1)))
    assert [(m.topic, m.payload) for m in publishes(sub)] == [
        ("long/topic/name", b"1"), ("long/topic/name", b"2")]


def test_a_topic_alias_above_our_maximum_is_refused():
    """[MQTT-3.3.2-9]"""
    broker, _ = make_broker(topic_alias_maximum=2)
    pub = connected(broker, "p")
    pub.send(Publish("t", b"", properties=Properties(topic_alias=3)))
    [packet] = pub.received()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x94


def test_outgoing_topic_aliases_are_used_within_the_client_maximum():
    """[MQTT-3.3.2-11]"""
    broker, _ = make_broker()
    sub = connected(broker, "s", properties=Properties(topic_alias_maximum=1))
    subscribe(sub, Subscription("#"))
    pub = connected(broker, "p")
    for topic in ("a", "a", "b"):
        pub.send(Publish(topic, b"x"))
    first, second, third = publishes(sub)
    assert (first.topic, first.properties.topic_alias) == ("a", 1)
    assert (second.topic, second.properties.topic_alias) == ("", 1)
    assert third.topic == "b" and (third.properties is None or third.properties.topic_alias is None)


def test_a_shared_subscription_gives_each_message_to_one_member_in_turn():
    """Section 4.8.2: one member per message, served round robin."""
    broker, _ = make_broker()
    members = [connected(broker, f"m{i}") for i in range(3)]
    for m in members:
        subscribe(m, Subscription("$share/g/jobs/+", 1))
    pub = connected(broker, "p")
    for i in range(6):
        pub.send(Publish("jobs/x", str(i).encode(), 1, packet_id=i + 1))
    counts = [len(publishes(m)) for m in members]
    assert counts == [2, 2, 2]


def test_a_shared_subscription_skips_members_that_are_offline():
    broker, _ = make_broker()
    online = connected(broker, "on")
    offline = connected(broker, "off")
    for m in (online, offline):
        subscribe(m, Subscription("$share/g/jobs", 0))
    offline.lose()
    pub = connected(broker, "p")
    for _ in range(4):
        pub.send(Publish("jobs", b"x"))
    assert len(publishes(online)) == 4


def test_a_will_is_published_when_the_connection_drops():
    """[MQTT-3.1.2-8]"""
    broker, _ = make_broker()
    watcher = connected(broker, "w")
    subscribe(watcher, Subscription("wills/#"))
    dying = connected(broker, "d", will=Will("wills/d", b"gone", 0))
    dying.lose()
    assert [m.payload for m in publishes(watcher)] == [b"gone"]


def test_a_normal_disconnect_discards_the_will():
    """[MQTT-3.1.2-10]"""
    broker, _ = make_broker()
    watcher = connected(broker, "w")
    subscribe(watcher, Subscription("wills/#"))
    leaving = connected(broker, "d", will=Will("wills/d", b"gone", 0))
    leaving.send(Disconnect(0))
    assert publishes(watcher) == []


def test_disconnect_with_will_message_publishes_the_will():
    broker, _ = make_broker()
    watcher = connected(broker, "w")
    subscribe(watcher, Subscription("wills/#"))
    leaving = connected(broker, "d", will=Will("wills/d", b"gone", 0))
    leaving.send(Disconnect(0x04))
    assert [m.payload for m in publishes(watcher)] == [b"gone"]


def test_a_delayed_will_waits_for_its_delay_and_is_cancelled_by_a_reconnect():
    broker, clock = make_broker()
    watcher = connected(broker, "w")
    subscribe(watcher, Subscription("wills/#"))
    session = Properties(session_expiry_interval=100)
    will = Will("wills/d", b"gone", 0, properties=Properties(will_delay_interval=10))
    dying = connected(broker, "d", clean_start=False, properties=session, will=will)
    dying.lose()
    clock.advance(5)
    assert publishes(watcher) == []
    connected(broker, "d", clean_start=False, properties=session)
    clock.advance(10)
    assert publishes(watcher) == []


def test_a_delayed_will_is_published_when_its_delay_ends():
    broker, clock = make_broker()
    watcher = connected(broker, "w")
    subscribe(watcher, Subscription("wills/#"))
    will = Will("wills/d", b"gone", 0, properties=Properties(will_delay_interval=3))
    dying = connected(broker, "d", clean_start=False, will=will,
                      properties=Properties(session_expiry_interval=100))
    dying.lose()
    clock.advance(2)
    assert publishes(watcher) == []
    clock.advance(2)
    assert [m.payload for m in publishes(watcher)] == [b"gone"]


def test_tenants_with_different_mountpoints_never_see_each_other():
    class Tenants:
        def authenticate(self, facts):
            return Principal(facts.username, mountpoint=f"t/{facts.username}/")

    broker, _ = make_broker(authenticator=Tenants())
    acme = connected(broker, "dev", username="acme")
    globex = connected(broker, "dev", username="globex")
    subscribe(acme, Subscription("#"))
    subscribe(globex, Subscription("#"))
    acme.send(Publish("status", b"acme-only"))
    [msg] = publishes(acme)
    assert msg.topic == "status"
    assert publishes(globex) == []
    # Same client id in two tenants: two sessions, no takeover.
    assert not acme.link.closed and not globex.link.closed


class Rules:
    """Publish only under "own/", subscribe "#" filtered to "own/" topics; "slow/" at QoS 0."""

    def authorize(self, principal, action, topic, qos, retain):
        if action is Action.PUBLISH:
            return Decision.ALLOW if topic.startswith("own/") else Decision.DENY
        if topic == "#":
            return Decision.ALLOW_FILTERED
        return Decision.ALLOW if topic.startswith("own/") else Decision.DENY

    def allow_delivery(self, principal, topic, qos):
        return topic.startswith("own/")

    def granted_qos(self, principal, topic_filter, qos):
        return 0 if topic_filter.startswith("own/slow/") else qos


def test_a_denied_publish_is_acknowledged_with_not_authorized_and_not_routed():
    broker, _ = make_broker(authorizer=Rules())
    sub = connected(broker, "s")
    subscribe(sub, Subscription("#"))
    pub = connected(broker, "p")
    pub.send(Publish("other/x", b"", 1, packet_id=1))
    [ack] = pub.received()
    assert ack.reason_code == 0x87
    assert publishes(sub) == []


def test_a_denied_subscription_is_refused_in_the_suback():
    broker, _ = make_broker(authorizer=Rules())
    sub = connected(broker, "s")
    assert subscribe(sub, Subscription("other/#"), Subscription("own/#")) == [0x87, 0]


def test_the_authorizer_caps_the_granted_qos_and_deliveries_follow_it():
    broker, _ = make_broker(authorizer=Rules())
    sub = connected(broker, "s")
    assert subscribe(sub, Subscription("own/slow/#", 2), Subscription("own/fast", 2)) == [0, 2]
    pub = connected(broker, "p")
    pub.send(Publish("own/slow/1", b"a", 1, packet_id=1))
    pub.send(Publish("own/fast", b"b", 1, packet_id=2))
    assert [(m.topic, m.qos) for m in publishes(sub)] == [("own/slow/1", 0), ("own/fast", 1)]


def test_a_filtered_subscription_checks_each_delivery():
    broker, _ = make_broker(authorizer=Rules())
    sub = connected(broker, "s")
    subscribe(sub, Subscription("#"))
    connected(broker, "p").send(Publish("own/1", b"ok"))
    assert [m.topic for m in publishes(sub)] == ["own/1"]


def test_admin_kick_sends_administrative_action():
    broker, _ = make_broker()
    peer = connected(broker, "victim")
    assert Admin(broker).kick("victim") is True
    [packet] = peer.received()
    assert isinstance(packet, Disconnect) and packet.reason_code == 0x98


def test_admin_recheck_removes_subscriptions_the_authorizer_now_denies():
    rules = Rules()
    broker, _ = make_broker(authorizer=rules)
    sub = connected(broker, "s")
    subscribe(sub, Subscription("own/#"))
    rules.authorize = lambda *a: Decision.DENY
    assert Admin(broker).recheck_subscriptions("s") == 1
    assert Admin(broker).list_connections()[0].subscriptions == ()


def test_admin_sets_and_clears_retained_messages():
    broker, _ = make_broker()
    admin = Admin(broker)
    admin.set_retained("cfg/a", b"1")
    assert admin.retained("cfg/#") == [("cfg/a", b"1")]
    assert admin.clear_retained("cfg/a")
    assert admin.retained("cfg/#") == []



def test_admin_forgets_a_mountpoint_with_its_sessions_and_every_retained_message():
    class Tenants:
        def authenticate(self, facts):
            return Principal(facts.username, mountpoint=f"t/{facts.username}/")

    broker, _ = make_broker(authenticator=Tenants(), mount_levels=1)
    admin = Admin(broker)
    acme = connected(broker, "dev", username="acme", clean_start=False,
                     properties=Properties(session_expiry_interval=600))
    connected(broker, "dev", username="globex")
    admin.set_retained("status", b"acme", mountpoint="t/acme/")
    admin.set_retained("$roost/presence/dev", b"{}", mountpoint="t/acme/")  # `#` does not reach it
    admin.set_retained("status", b"globex", mountpoint="t/globex/")
    assert admin.forget_mountpoint("t/acme/") == (1, 2)
    assert isinstance(acme.received()[-1], Disconnect)
    assert ("t/acme/", "dev") not in broker.sessions and ("t/globex/", "dev") in broker.sessions
    assert [m.topic for m in broker.retained] == ["t/globex/status"]

def test_a_memory_store_carries_sessions_and_retained_messages_across_a_restart():
    store = MemoryStore()
    broker, clock = make_broker(store=store)
    sub = connected(broker, "s", level=4, clean_start=False)
    subscribe(sub, Subscription("x", 1))
    sub.lose()
    pub = connected(broker, "p")
    pub.send(Publish("x", b"queued", 1, packet_id=1))
    pub.send(Publish("keep", b"retained", 0, retain=True))
    broker.stop()
    again, _ = make_broker(clock=clock, store=store)
    peer = Peer(again, 4)
    assert peer.connect("s", clean_start=False).session_present
    assert [m.payload for m in publishes(peer)] == [b"queued"]
    assert again.retained.get("keep").payload == b"retained"


def test_a_311_bridge_gets_no_local_and_retain_as_published_on_every_subscription():
    """Mosquitto's bridge bit (protocol level 0x84) asks for both; a plain 3.1.1 client
    gets its own messages back and retain cleared on live messages."""
    broker, _ = make_broker()
    bridge = connected(broker, "bridge", level=4, bridge=True)
    plain = connected(broker, "plain", level=4)
    for peer in (bridge, plain):
        subscribe(peer, Subscription("loop/#", 0))
    bridge.send(Publish("loop/a", b"from bridge", 0, retain=True))
    plain.send(Publish("loop/b", b"from plain", 0, retain=True))
    assert [(p.topic, p.retain) for p in publishes(bridge)] == [("loop/b", True)]
    assert [(p.topic, p.retain) for p in publishes(plain)] == [("loop/a", False), ("loop/b", False)]


def test_the_bridge_bit_survives_the_codec_on_31_and_311_only():
    for level, byte in ((3, 0x83), (4, 0x84)):
        data = encode(Connect(protocol_level=level, client_id="b", bridge=True), level)
        assert byte in data[:12]
        [packet] = StreamDecoder().feed(data)
        assert packet.protocol_level == level and packet.bridge


class Switchable:
    """Everything allowed except topics under the prefixes in `denied`."""

    def __init__(self) -> None:
        self.denied: set[str] = set()

    def authorize(self, principal, action, topic, qos, retain):
        return Decision.DENY if topic.split("/")[0] in self.denied else Decision.ALLOW

    def allow_delivery(self, principal, topic, qos):
        return topic.split("/")[0] not in self.denied

    def granted_qos(self, principal, topic_filter, qos):
        return qos


def test_messages_queued_for_a_topic_a_recheck_revokes_are_not_delivered():
    """As after Mosquitto's ACL reload; the dropped message still used up its packet id."""
    rules = Switchable()
    broker, _ = make_broker(authorizer=rules)
    session = Properties(session_expiry_interval=100)
    sub = connected(broker, "s", clean_start=False, properties=session)
    subscribe(sub, Subscription("a/#", 1), Subscription("b/#", 1))
    sub.lose()
    pub = connected(broker, "p")
    pub.send(Publish("a/1", b"1", 1, packet_id=1))
    pub.send(Publish("b/1", b"2", 1, packet_id=2))
    rules.denied.add("b")
    assert Admin(broker).recheck_subscriptions() == 1
    sub = connected(broker, "s", clean_start=False, properties=session)
    assert [(m.topic, m.packet_id) for m in publishes(sub)] == [("a/1", 1)]
    pub.send(Publish("a/2", b"3", 1, packet_id=3))
    assert [(m.topic, m.packet_id) for m in publishes(sub)] == [("a/2", 3)]
