"""Client/broker pairs joined in memory: the engine without sockets or an event loop."""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from broker.config import BrokerConfig
from broker.engine.broker import Broker
from broker.engine.connection import Connection
from broker.mqtt import Connect, Packet, StreamDecoder, encode


class FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A scheduler whose time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._queue: list[tuple[float, int, FakeTimer, Any, tuple[Any, ...]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Any, *args: Any) -> FakeTimer:
        timer = FakeTimer()
        heapq.heappush(self._queue, (self.now + delay, next(self._seq), timer, callback, args))
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._queue and self._queue[0][0] <= end:
            when, _, timer, callback, args = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            if not timer.cancelled:
                callback(*args)
        self.now = end


class MemoryLink:
    """The engine's Link, keeping what the broker writes for the test to decode."""

    def __init__(self, listener: str = "memory", certs: tuple[bytes, ...] = ()) -> None:
        self.listener = listener
        self.remote_address = ("127.0.0.1", 50000)
        self.peer_certificates = certs
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.backlog = 0

    def write(self, data: bytes | bytearray) -> None:
        if not self.closed:
            self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def buffered(self) -> int:
        return self.backlog


class Peer:
    """One client: packets in through the Connection, packets out decoded."""

    def __init__(self, broker: Broker, level: int = 5, link: MemoryLink | None = None) -> None:
        self.broker = broker
        self.level = level
        self.link = link or MemoryLink()
        self.conn = Connection(broker, self.link, StreamDecoder(
            max_packet_size=broker.config.max_packet_size))
        self.decoder = StreamDecoder(server_side=False, protocol_level=level)
        self.pending: list[Packet] = []

    def send(self, packet: Packet | bytes) -> None:
        data = packet if isinstance(packet, bytes) else encode(packet, self.level)
        self.conn.data_received(data)

    def received(self) -> list[Packet]:
        """Everything the broker wrote since the last call."""
        data = bytes(self.link.written)
        self.link.written.clear()
        packets, self.pending = self.pending, []
        return packets + (self.decoder.feed(data) if data else [])

    def connect(self, client_id: str = "c", **kwargs: Any) -> Any:
        self.send(Connect(protocol_level=self.level, client_id=client_id, **kwargs))
        packets = self.received()
        assert packets, "no CONNACK"
        self.pending = packets[1:]
        return packets[0]

    def lose(self) -> None:
        """The network drops the connection."""
        self.link.closed = True
        self.conn.connection_lost()


def make_broker(clock: FakeClock | None = None, **config: Any) -> tuple[Broker, FakeClock]:
    clock = clock or FakeClock()
    settings = {"sys_interval": 0.0, **config}
    authenticator = settings.pop("authenticator", None)
    authorizer = settings.pop("authorizer", None)
    store = settings.pop("store", None)
    broker = Broker(BrokerConfig(**settings), clock, authenticator, authorizer, store)
    broker.start()
    return broker, clock


def connected(broker: Broker, client_id: str, level: int = 5, **kwargs: Any) -> Peer:
    peer = Peer(broker, level)
    connack = peer.connect(client_id, **kwargs)
    assert connack.reason_code == 0, connack
    return peer
