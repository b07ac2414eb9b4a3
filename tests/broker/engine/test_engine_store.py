"""Snapshots and the file store: what a restart keeps, written atomically."""

from __future__ import annotations

import json
import os

from broker.engine.interfaces import Principal
from broker.engine.store import FileStore, snapshot
from broker.mqtt import Properties, Puback, Publish, Subscribe, Subscription, Will
from tests.broker.engine.engine_pairs import Peer, connected, make_broker


def persistent_subscriber(broker, client_id="s", qos=2):
    sub = connected(broker, client_id, clean_start=False,
                    properties=Properties(session_expiry_interval=600))
    sub.send(Subscribe(1, [Subscription("x/#", qos)], Properties(subscription_identifiers=[7])))
    sub.received()
    return sub


def test_a_file_store_round_trip_keeps_queued_and_inflight_messages_with_their_properties(tmp_path):
    store = FileStore(str(tmp_path))
    broker, clock = make_broker(store=store)
    sub = persistent_subscriber(broker)
    pub = connected(broker, "p")
    props = Properties(content_type="text/plain", correlation_data=b"\x00\xff",
                       user_properties=[("k", "v")], message_expiry_interval=3600,
                       order=(0x26, 0x09, 0x03, 0x02))
    pub.send(Publish("x/1", b"in flight", 1, packet_id=1, properties=props))
    [inflight] = [p for p in sub.received() if isinstance(p, Publish)]
    sub.lose()
    pub.send(Publish("x/2", b"queued", 2, packet_id=2))
    pub.send(Publish("x/keep", b"retained", 1, retain=True, packet_id=3))
    broker.stop()

    again, _ = make_broker(clock=clock, store=FileStore(str(tmp_path)))
    peer = Peer(again)
    assert peer.connect("s", clean_start=False,
                        properties=Properties(session_expiry_interval=600)).session_present
    resent, queued, retained = [p for p in peer.received() if isinstance(p, Publish)]
    assert (resent.payload, resent.dup, resent.packet_id) == (b"in flight", True, inflight.packet_id)
    assert resent.properties.content_type == "text/plain"
    assert resent.properties.correlation_data == b"\x00\xff"
    assert resent.properties.user_properties == [("k", "v")]
    assert resent.properties.subscription_identifiers == [7]
    assert resent.properties.order == (0x0B, 0x26, 0x09, 0x03, 0x02)  # the publisher's order kept
    assert (queued.payload, queued.qos) == (b"queued", 2)
    assert retained.payload == b"retained"
    assert again.retained.get("x/keep").payload == b"retained"


def test_a_sessions_packet_ids_go_on_after_a_restart(tmp_path):
    """As in Mosquitto, which keeps each client's last packet id in its database."""
    broker, clock = make_broker(store=FileStore(str(tmp_path)))
    sub = persistent_subscriber(broker, qos=1)
    pub = connected(broker, "p")
    pub.send(Publish("x/1", b"1", 1, packet_id=1))
    [first] = [p for p in sub.received() if isinstance(p, Publish)]
    sub.send(Puback(first.packet_id))
    broker.stop()
    again, _ = make_broker(clock=clock, store=FileStore(str(tmp_path)))
    peer = Peer(again)
    peer.connect("s", clean_start=False, properties=Properties(session_expiry_interval=600))
    connected(again, "p").send(Publish("x/2", b"2", 1, packet_id=1))
    [second] = [p for p in peer.received() if isinstance(p, Publish)]
    assert (first.packet_id, second.packet_id) == (1, 2)


def test_qos2_receiver_state_survives_a_restart(tmp_path):
    """A QoS 2 message received before the restart is not delivered again when resent."""
    broker, clock = make_broker(store=FileStore(str(tmp_path)))
    pub = connected(broker, "p", clean_start=False, properties=Properties(session_expiry_interval=600))
    pub.send(Publish("y", b"once", 2, packet_id=5))
    pub.received()
    pub.lose()
    broker.stop()
    again, _ = make_broker(clock=clock, store=FileStore(str(tmp_path)))
    watcher = connected(again, "w")
    watcher.send(Subscribe(1, [Subscription("y", 2)]))
    watcher.received()
    peer = Peer(again)
    peer.connect("p", clean_start=False, properties=Properties(session_expiry_interval=600))
    peer.send(Publish("y", b"once", 2, dup=True, packet_id=5))
    assert [p for p in watcher.received() if isinstance(p, Publish)] == []


def test_sessions_whose_expiry_passed_while_stopped_are_not_restored(tmp_path):
    store = FileStore(str(tmp_path))
    broker, _ = make_broker(store=store)
    persistent_subscriber(broker).lose()
    snap = snapshot(broker)
    snap.sessions[0].disconnected_at -= 601
    store.save(snap)
    again, _ = make_broker(store=FileStore(str(tmp_path)))
    assert again.sessions == {}


def test_the_state_file_is_replaced_atomically(tmp_path):
    store = FileStore(str(tmp_path))
    broker, _ = make_broker(store=store)
    persistent_subscriber(broker)
    broker.save()
    broker.save()
    assert os.listdir(tmp_path) == ["roost-broker.json"]
    data = json.loads((tmp_path / "roost-broker.json").read_text())
    assert data["format"] == 1 and len(data["sessions"]) == 1


def test_autosave_writes_the_state_periodically(tmp_path):
    broker, clock = make_broker(store=FileStore(str(tmp_path)), autosave_interval=30)
    persistent_subscriber(broker)
    assert not (tmp_path / "roost-broker.json").exists()
    clock.advance(31)
    assert (tmp_path / "roost-broker.json").exists()


def test_clean_sessions_are_not_persisted(tmp_path):
    broker, _ = make_broker(store=FileStore(str(tmp_path)))
    connected(broker, "volatile")
    assert snapshot(broker).sessions == []


class NamedUsers:
    """An authenticator giving principals plain attributes and a live object, as real ones do."""

    def authenticate(self, facts):
        return Principal(facts.client_id, attributes={"username": facts.username, "tenant_id": 7,
                                                     "cache": object()})


def test_a_restored_session_keeps_its_principals_plain_attributes(tmp_path):
    """Authorization of a restored session decides on the same identity as before."""
    broker, clock = make_broker(store=FileStore(str(tmp_path)), authenticator=NamedUsers())
    sub = connected(broker, "s", clean_start=False, username="alice",
                    properties=Properties(session_expiry_interval=600))
    sub.lose()
    broker.stop()
    again, _ = make_broker(clock=clock, store=FileStore(str(tmp_path)))
    [session] = again.sessions.values()
    assert session.principal.attributes == {"username": "alice", "tenant_id": 7}


def dying_client(broker, delay, expiry=600):
    will = Will("wills/dying", b"gone", 1, properties=Properties(will_delay_interval=delay))
    return connected(broker, "dying", clean_start=False, will=will,
                     properties=Properties(session_expiry_interval=expiry))


def will_watcher(broker):
    watcher = connected(broker, "watcher", clean_start=False, properties=Properties(session_expiry_interval=600))
    watcher.send(Subscribe(1, [Subscription("wills/#", 1)]))
    watcher.received()
    return watcher


def published(peer):
    return [p.payload for p in peer.received() if isinstance(p, Publish)]


def test_a_will_waiting_out_its_delay_survives_a_restart(tmp_path):
    """[MQTT-3.1.3-9] the delay keeps running across the restart; the will is not lost."""
    broker, clock = make_broker(store=FileStore(str(tmp_path)))
    will_watcher(broker).lose()
    dying_client(broker, delay=30).lose()
    clock.advance(10)
    broker.stop()
    again, clock = make_broker(clock=clock, store=FileStore(str(tmp_path)))
    watcher = Peer(again)
    assert watcher.connect("watcher", clean_start=False,
                           properties=Properties(session_expiry_interval=600)).session_present
    clock.advance(15)
    assert published(watcher) == []
    clock.advance(10)  # 30 s after the client went
    assert published(watcher) == [b"gone"]


def test_a_client_back_within_the_delay_after_a_restart_cancels_its_will(tmp_path):
    broker, clock = make_broker(store=FileStore(str(tmp_path)))
    will_watcher(broker).lose()
    dying_client(broker, delay=30).lose()
    broker.stop()
    again, clock = make_broker(clock=clock, store=FileStore(str(tmp_path)))
    watcher = Peer(again)
    watcher.connect("watcher", clean_start=False, properties=Properties(session_expiry_interval=600))
    Peer(again).connect("dying", clean_start=False, properties=Properties(session_expiry_interval=600))
    clock.advance(60)
    assert published(watcher) == []


def test_a_will_whose_session_ended_while_stopped_is_published_at_start(tmp_path):
    store = FileStore(str(tmp_path))
    broker, clock = make_broker(store=store)
    will_watcher(broker).lose()
    dying_client(broker, delay=300, expiry=60).lose()
    snap = snapshot(broker)
    dying = next(s for s in snap.sessions if s.client_id == "dying")
    dying.disconnected_at -= 120  # the session expired 60 s ago, during the outage
    store.save(snap)
    again, clock = make_broker(clock=clock, store=FileStore(str(tmp_path)))
    assert ("", "dying") not in again.sessions
    watcher = Peer(again)
    watcher.connect("watcher", clean_start=False, properties=Properties(session_expiry_interval=600))
    clock.advance(0.1)
    assert published(watcher) == [b"gone"]
