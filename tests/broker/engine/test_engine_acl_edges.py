"""ACL edges in the engine: wills are checked at CONNECT, `$SYS` is never a client's to
publish into, and a retained message lasts only as long as its publisher's right to it."""

from __future__ import annotations

import asyncio
from typing import Any

from broker.engine.interfaces import Action, Decision, Principal
from broker.engine.journal import Journal
from broker.engine.store import FileStore
from broker.mqtt import Connack, Connect, Properties, Publish, Subscribe, Subscription, Will
from broker.mqtt.packets import Puback
from tests.broker.engine.engine_pairs import Peer, connected, make_broker
from tests.broker.engine.test_engine_journal import crash, settle


class Rules:
    """An Authorizer whose publish rights are a set of (principal name, topic) one can edit."""

    def __init__(self, *publish: tuple[str, str]) -> None:
        self.publish = set(publish)

    def authorize(self, principal: Principal, action: Action, topic: str, qos: int, retain: bool) -> Decision:
        if action is Action.SUBSCRIBE:
            return Decision.ALLOW
        return Decision.ALLOW if (principal.name, topic) in self.publish else Decision.DENY

    def allow_delivery(self, principal: Principal, topic: str, qos: int) -> bool:
        return True

    def granted_qos(self, principal: Principal, topic_filter: str, qos: int) -> int:
        return qos


def _publishes(peer: Peer) -> list[Any]:
    return [p for p in peer.received() if isinstance(p, Publish)]


# Wills at CONNECT ----------------------------------------------------------------------------


def test_a_will_the_client_may_not_publish_refuses_the_mqtt5_connect_with_0x87() -> None:
    broker, _ = make_broker(authorizer=Rules(("dev", "dev/status")))
    connack = Peer(broker, 5).connect("dev", will=Will("other/status", b"gone"))
    assert isinstance(connack, Connack) and connack.reason_code == 0x87


def test_a_will_the_client_may_not_publish_refuses_the_311_connect_with_return_code_5() -> None:
    broker, _ = make_broker(authorizer=Rules(("dev", "dev/status")))
    assert Peer(broker, 4).connect("dev", will=Will("other/status", b"gone")).reason_code == 5


def test_a_will_the_client_may_publish_is_accepted_at_connect() -> None:
    broker, _ = make_broker(authorizer=Rules(("dev", "dev/status")))
    assert Peer(broker, 5).connect("dev", will=Will("dev/status", b"gone")).reason_code == 0


def test_a_will_into_sys_is_refused_even_by_the_broker_that_allows_everything() -> None:
    broker, _ = make_broker()
    assert Peer(broker, 5).connect("dev", will=Will("$SYS/broker/uptime", b"0")).reason_code == 0x87
    assert Peer(broker, 5).connect("dev2", will=Will("$SYSTEM/fine", b"0")).reason_code == 0


# $SYS ----------------------------------------------------------------------------------------


def test_a_publish_into_sys_is_refused_by_the_broker_that_allows_everything() -> None:
    broker, _ = make_broker()
    watcher = connected(broker, "watcher")
    watcher.send(Subscribe(1, [Subscription("$SYS/#")]))
    watcher.received()
    publisher = connected(broker, "pub")
    publisher.send(Publish("$SYS/broker/clients/connected", b"999", qos=1, packet_id=7))
    assert [p.reason_code for p in publisher.received() if isinstance(p, Puback)] == [0x87]
    assert _publishes(watcher) == []


def test_a_publish_to_other_dollar_topics_still_reaches_subscribers() -> None:
    broker, _ = make_broker()
    watcher = connected(broker, "watcher")
    watcher.send(Subscribe(1, [Subscription("$app/#")]))
    watcher.received()
    connected(broker, "pub").send(Publish("$app/x", b"1"))
    assert [p.topic for p in _publishes(watcher)] == ["$app/x"]


# Retained messages and their publisher's rights ----------------------------------------------


def _retained_for_new_subscriber(broker: Any, client_id: str) -> list[str]:
    subscriber = connected(broker, client_id)
    subscriber.send(Subscribe(1, [Subscription("#")]))
    return [p.topic for p in _publishes(subscriber)]


def test_a_retained_message_is_delivered_while_its_publisher_may_still_publish_it() -> None:
    rules = Rules(("dev", "dev/state"))
    broker, _ = make_broker(authorizer=rules)
    connected(broker, "dev").send(Publish("dev/state", b"on", retain=True))
    assert _retained_for_new_subscriber(broker, "reader-1") == ["dev/state"]


def test_a_retained_message_is_withheld_once_its_publisher_lost_the_right_to_publish_it() -> None:
    rules = Rules(("dev", "dev/state"))
    broker, _ = make_broker(authorizer=rules)
    dev = connected(broker, "dev")
    dev.send(Publish("dev/state", b"on", retain=True))
    dev.lose()
    rules.publish.clear()
    assert _retained_for_new_subscriber(broker, "reader-1") == []
    rules.publish.add(("dev", "dev/state"))  # the right restored: so is the message
    assert _retained_for_new_subscriber(broker, "reader-2") == ["dev/state"]


def _restarted_with(store: Any, rules: Rules, clock: Any) -> Any:
    broker, _ = make_broker(clock=clock, authorizer=rules, store=store)
    return broker


def test_the_publisher_of_a_retained_message_is_kept_across_a_restart(tmp_path: Any) -> None:
    """A restored retained message is still withheld once its publisher lost the right."""
    rules = Rules(("dev", "dev/state"))
    broker, clock = make_broker(authorizer=rules, store=FileStore(str(tmp_path)))
    connected(broker, "dev").send(Publish("dev/state", b"on", retain=True))
    broker.stop()
    again = _restarted_with(FileStore(str(tmp_path)), Rules(), clock)
    assert _retained_for_new_subscriber(again, "reader-1") == []
    again.stop()
    allowed = _restarted_with(FileStore(str(tmp_path)), Rules(("dev", "dev/state")), clock)
    assert _retained_for_new_subscriber(allowed, "reader-2") == ["dev/state"]
    allowed.stop()


def test_the_publisher_of_a_retained_message_survives_a_crash_in_the_journal(tmp_path: Any) -> None:
    async def first() -> Any:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(authorizer=Rules(("dev", "dev/state")), store=journal)
        await settle(journal)
        connected(broker, "dev").send(Publish("dev/state", b"on", 1, retain=True, packet_id=1))
        await settle(journal)
        crash(broker)
        return clock

    clock = asyncio.run(first())

    async def restart(rules: Rules, reader: str) -> list[str]:
        journal = Journal(str(tmp_path))
        broker = _restarted_with(journal, rules, clock)
        topics = _retained_for_new_subscriber(broker, reader)
        crash(broker)  # no snapshot: the next start replays the same journal again
        return topics

    assert asyncio.run(restart(Rules(), "reader-1")) == []
    assert asyncio.run(restart(Rules(("dev", "dev/state")), "reader-2")) == ["dev/state"]


# Retained messages waiting for a subscriber's socket ------------------------------------------


def _stalled_subscriber(broker: Any, client_id: str, **connect: Any) -> Peer:
    """A subscriber to '#' whose socket is backed up, so its retained messages wait."""
    subscriber = connected(broker, client_id, **connect)
    subscriber.link.backlog = broker.config.max_write_buffer + 1
    subscriber.conn.set_backlogged(True)
    subscriber.send(Subscribe(1, [Subscription("#", 1)]))
    assert _publishes(subscriber) == []
    return subscriber


def _drain(peer: Peer) -> None:
    peer.link.backlog = 0
    peer.conn.set_backlogged(False)


def test_a_waiting_retained_message_is_checked_when_sent_not_when_subscribed() -> None:
    rules = Rules(("dev", "dev/state"), ("dev", "dev/mode"))
    broker, _ = make_broker(authorizer=rules)
    dev = connected(broker, "dev")
    dev.send(Publish("dev/state", b"on", retain=True))
    dev.send(Publish("dev/mode", b"eco", retain=True))
    reader = _stalled_subscriber(broker, "reader")
    rules.publish.discard(("dev", "dev/state"))  # lost while the message waited
    _drain(reader)
    assert [p.topic for p in _publishes(reader)] == ["dev/mode"]


def test_a_waiting_retained_message_replaced_meanwhile_is_not_sent_after_the_new_one() -> None:
    rules = Rules(("dev", "dev/state"))
    broker, _ = make_broker(authorizer=rules)
    dev = connected(broker, "dev")
    dev.send(Publish("dev/state", b"old", retain=True))
    reader = _stalled_subscriber(broker, "reader")
    dev.send(Publish("dev/state", b"new", qos=1, packet_id=1, retain=True))
    _drain(reader)
    assert [(p.payload, p.retain) for p in _publishes(reader)] == [(b"new", False)]


def test_retained_messages_still_waiting_when_a_persistent_session_goes_offline_are_kept() -> None:
    """QoS 1/2 ones go into its queue and arrive when it comes back, as Mosquitto's do."""
    rules = Rules(("dev", "a"), ("dev", "b"), ("dev", "c"))
    broker, _ = make_broker(authorizer=rules)
    dev = connected(broker, "dev")
    for topic in "abc":
        dev.send(Publish(topic, topic.encode(), qos=1, packet_id=ord(topic), retain=True))
    rules.publish.add(("dev", "zero"))
    dev.send(Publish("zero", b"0", retain=True))
    keep = {"clean_start": False, "properties": Properties(session_expiry_interval=3600)}
    reader = _stalled_subscriber(broker, "reader", **keep)
    reader.lose()
    back = Peer(broker, 5)
    assert back.connect("reader", **keep).session_present
    got = _publishes(back)
    assert [(p.topic, p.retain) for p in got] == [("a", True), ("b", True), ("c", True)]


def test_retained_messages_queued_for_an_offline_session_survive_a_crash(tmp_path: Any) -> None:
    keep = {"clean_start": False, "properties": Properties(session_expiry_interval=3600)}
    rights = (("dev", "a"), ("dev", "b"))

    async def first() -> Any:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(authorizer=Rules(*rights), store=journal)
        await settle(journal)
        dev = connected(broker, "dev")
        dev.send(Publish("a", b"1", 1, retain=True, packet_id=1))
        dev.send(Publish("b", b"2", 1, retain=True, packet_id=2))
        reader = Peer(broker, 5)
        reader.send(Connect(protocol_level=5, client_id="reader", **keep))
        await settle(journal)
        reader.link.backlog = broker.config.max_write_buffer + 1
        reader.conn.set_backlogged(True)
        reader.send(Subscribe(1, [Subscription("#", 1)]))
        await settle(journal)
        assert _publishes(reader) == []
        reader.lose()
        await settle(journal)
        crash(broker)
        return clock

    clock = asyncio.run(first())

    async def restart() -> list[tuple[str, bool]]:
        journal = Journal(str(tmp_path))
        broker = _restarted_with(journal, Rules(*rights), clock)
        back = Peer(broker, 5)
        back.send(Connect(protocol_level=5, client_id="reader", **keep))
        await settle(journal)
        packets = back.received()
        assert isinstance(packets[0], Connack) and packets[0].session_present
        got = [(p.topic, p.retain) for p in packets if isinstance(p, Publish)]
        crash(broker)
        return got

    assert asyncio.run(restart()) == [("a", True), ("b", True)]
