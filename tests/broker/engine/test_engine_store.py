"""Snapshots and the file store: what a restart keeps, written atomically."""

from __future__ import annotations

import json
import os

from broker.engine.store import FileStore, snapshot
from broker.mqtt import Properties, Publish, Subscribe, Subscription
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
                       user_properties=[("k", "v")], message_expiry_interval=3600)
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
    assert (queued.payload, queued.qos) == (b"queued", 2)
    assert retained.payload == b"retained"
    assert again.retained.get("x/keep").payload == b"retained"


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
    assert os.listdir(tmp_path) == [FileStore.FILENAME]
    data = json.loads((tmp_path / FileStore.FILENAME).read_text())
    assert data["format"] == 1 and len(data["sessions"]) == 1


def test_autosave_writes_the_state_periodically(tmp_path):
    broker, clock = make_broker(store=FileStore(str(tmp_path)), autosave_interval=30)
    persistent_subscriber(broker)
    assert not (tmp_path / FileStore.FILENAME).exists()
    clock.advance(31)
    assert (tmp_path / FileStore.FILENAME).exists()


def test_clean_sessions_are_not_persisted(tmp_path):
    broker, _ = make_broker(store=FileStore(str(tmp_path)))
    connected(broker, "volatile")
    assert snapshot(broker).sessions == []
