"""The platform's seams: authenticators (sync and async), hooks, refusals per version."""

from __future__ import annotations

import asyncio

from broker.config import BrokerConfig
from broker.engine.broker import Broker
from broker.engine.interfaces import EventHooks, Principal
from broker.mqtt import Connack, Connect, Disconnect, Publish, Subscribe, Subscription
from tests.broker.engine.engine_pairs import MemoryLink, Peer, connected, make_broker


class Recorder:
    def __init__(self, answer):
        self.answer = answer
        self.facts = []

    def authenticate(self, facts):
        self.facts.append(facts)
        return self.answer


def test_the_authenticator_sees_the_connection_facts():
    auth = Recorder(Principal("dev"))
    broker, _ = make_broker(authenticator=auth)
    peer = Peer(broker, 5, MemoryLink(listener="mqtts://0.0.0.0:8883", certs=(b"der",)))
    peer.connect("device-1", username="u", password=b"p")
    [facts] = auth.facts
    assert (facts.client_id, facts.username, facts.password, facts.protocol_level,
            facts.peer_certificates, facts.listener) == (
        "device-1", "u", b"p", 5, (b"der",), "mqtts://0.0.0.0:8883")


def test_a_refusal_reaches_an_mqtt5_client_as_its_reason_code():
    broker, _ = make_broker(authenticator=Recorder(0x86))
    peer = Peer(broker, 5)
    connack = peer.connect("x")
    assert connack.reason_code == 0x86
    assert peer.link.closed


def test_a_refusal_reaches_a_311_client_as_the_nearest_return_code():
    broker, _ = make_broker(authenticator=Recorder(0x87))
    peer = Peer(broker, 4)
    assert peer.connect("x").reason_code == 5  # not authorized


async def test_an_async_authenticator_holds_later_packets_until_it_answers():
    gate = asyncio.Event()

    class Slow:
        async def authenticate(self, facts):
            await gate.wait()
            return Principal("late")

    loop = asyncio.get_running_loop()
    broker = Broker(BrokerConfig(sys_interval=0), loop, Slow())
    peer = Peer(broker, 5)
    # CONNECT and SUBSCRIBE arrive in one buffer, before authentication finishes.
    from broker.mqtt import encode

    peer.conn.data_received(encode(Connect(protocol_level=5, client_id="a"), 5)
                            + encode(Subscribe(1, [Subscription("x")]), 5))
    assert peer.received() == []
    assert not peer.link.reading
    gate.set()
    await asyncio.sleep(0.01)
    packets = peer.received()
    assert isinstance(packets[0], Connack) and packets[0].reason_code == 0
    assert packets[1].reason_codes == [0]
    assert peer.link.reading


async def test_an_authenticator_that_fails_refuses_with_server_unavailable():
    class Broken:
        async def authenticate(self, facts):
            raise RuntimeError("database down")

    broker = Broker(BrokerConfig(sys_interval=0), asyncio.get_running_loop(), Broken())
    peer = Peer(broker, 5)
    peer.send(Connect(protocol_level=5, client_id="a"))
    await asyncio.sleep(0.01)
    [connack] = peer.received()
    assert connack.reason_code == 0x88


def test_hooks_report_connections_disconnections_and_publishes():
    hooks = EventHooks()
    events = []
    hooks.connected.append(lambda info: events.append(("up", info.client_id)))
    hooks.disconnected.append(lambda info, reason: events.append(("down", info.client_id, reason)))
    hooks.published.append(lambda principal, msg: events.append(("pub", principal.name, msg.topic)))
    broker, _ = make_broker()
    broker.hooks = hooks
    peer = connected(broker, "c", username="alice")
    peer.send(Publish("t", b"x"))
    peer.send(Disconnect(0))
    assert events == [("up", "c"), ("pub", "alice", "t"), ("down", "c", 0)]
