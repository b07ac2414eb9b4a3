"""The asyncio Protocol against a fake transport: batching, flow control, closing."""

from __future__ import annotations

import asyncio

from broker.config import BrokerConfig
from broker.engine.broker import Broker
from broker.mqtt import (
    Connect,
    Pingreq,
    Publish,
    StreamDecoder,
    Subscribe,
    Subscription,
    encode,
)
from broker.net.listener import Server
from broker.net.protocol import MQTTProtocol


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.reading = True
        self.buffer = 0

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def get_write_buffer_size(self) -> int:
        return self.buffer

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 40000)}.get(name, default)


def make_server() -> Server:
    config = BrokerConfig(sys_interval=0)
    broker = Broker(config, asyncio.get_running_loop())
    return Server(config, broker)


def open_connection(server: Server) -> tuple[MQTTProtocol, FakeTransport]:
    protocol = MQTTProtocol(server, "test", tls=False)
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def test_replies_to_one_buffer_leave_in_one_write():
    server = make_server()
    protocol, transport = open_connection(server)
    protocol.data_received(
        encode(Connect(protocol_level=4, client_id="a"), 4)
        + encode(Subscribe(1, [Subscription("x", 0)]), 4)
        + encode(Pingreq(), 4)
    )
    assert transport.writes == []
    await asyncio.sleep(0)
    assert len(transport.writes) == 1
    packets = StreamDecoder(server_side=False, protocol_level=4).feed(transport.writes[0])
    assert [type(p).__name__ for p in packets] == ["Connack", "Suback", "Pingresp"]


async def test_a_publisher_keeps_being_read_while_its_subscriber_is_backlogged():
    """A slow consumer slows no one (issue 14): only its own deliveries wait."""
    server = make_server()
    sub, sub_transport = open_connection(server)
    sub.data_received(encode(Connect(protocol_level=4, client_id="s"), 4)
                      + encode(Subscribe(1, [Subscription("x", 0)]), 4))
    pub, pub_transport = open_connection(server)
    pub.data_received(encode(Connect(protocol_level=4, client_id="p"), 4))
    await asyncio.sleep(0)
    sub.pause_writing()
    sub_transport.buffer = server.config.max_write_buffer + 1
    pub.data_received(encode(Publish("x", b"1"), 4))
    assert pub_transport.reading
    assert server.broker.stats.drops == {"slow_client": 1}


async def test_a_lost_connection_unregisters_itself():
    server = make_server()
    protocol, _ = open_connection(server)
    protocol.data_received(encode(Connect(protocol_level=5, client_id="gone"), 5))
    assert protocol in server.protocols
    protocol.connection_lost(None)
    assert protocol not in server.protocols
    assert server.broker.sessions == {}


async def test_the_connection_limit_aborts_extra_transports():
    config = BrokerConfig(sys_interval=0, max_connections=1)
    server = Server(config, Broker(config, asyncio.get_running_loop()))
    open_connection(server)
    _, second = open_connection(server)
    assert second.aborted
