"""The byte pipe between one browser WebSocket and one connection to the broker's bridge.

After the rewritten CONNECT, bytes go both ways as they come: a WebSocket frame may hold
part of a packet or several packets, and nothing is decoded again. Two `PacketWalker`s
follow the packet boundaries from fixed headers alone: upstream to count PUBLISH packets
and refuse oversized ones, downstream to know when a DISCONNECT may be slipped in.

Memory stays bounded both ways. Towards the broker, a frame is written to the socket and,
once the socket's buffer passes HIGH_WATER, reading from the browser is paused until it
drains. Towards the browser, the relay reads at most CHUNK bytes from the broker, hands
them to the ASGI server and waits until the browser's socket takes them (`TwistedFlow`)
before reading more; meanwhile the broker's own socket buffer fills and the broker applies
its slow-consumer policy to this one session. A slow browser costs nobody else anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from broker.mqtt import Disconnect, Properties, ProtocolError, ReasonCode, encode

from . import metrics
from .access import Refusal
from .flow import TwistedFlow
from .limits import TokenBucket
from .walker import PacketWalker

CHUNK = 64 * 1024
HIGH_WATER = 64 * 1024

RATE_TOO_HIGH = Refusal(ReasonCode.MESSAGE_RATE_TOO_HIGH, "message rate")
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Relay:
    """One relayed MQTT connection; `pump()` runs the broker-to-browser direction."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, send: Send,
                 flow: TwistedFlow | None, *, max_packet: int, rate: int, now: float) -> None:
        self.reader = reader
        self.writer = writer
        self.send = send
        self.flow = flow
        self.upstream = PacketWalker(max_packet)
        self.downstream = PacketWalker()
        self.bucket = TokenBucket(rate, now)
        self.unreported = 0  # PUBLISH packets not yet added to the user's shared counter
        # Held while a chunk goes to the browser, so an injected DISCONNECT never lands
        # inside a packet.
        self.send_lock = asyncio.Lock()
        self.closed = False

    async def to_broker(self, data: bytes, now: float) -> Refusal | None:
        """Forward a frame's bytes; a Refusal when they break a limit (nothing is forwarded)."""
        try:
            publishes = self.upstream.feed(data)
        except ProtocolError as error:
            reason = "packet too large" if error.reason_code == ReasonCode.PACKET_TOO_LARGE else "malformed"
            return Refusal(error.reason_code, reason)
        if publishes:
            self.unreported += publishes
            if not self.bucket.take(publishes, now):
                return RATE_TOO_HIGH
        if self.closed:
            return None
        writer = self.writer
        writer.write(data)
        metrics.TO_BROKER.inc(len(data))
        if writer.transport.get_write_buffer_size() > HIGH_WATER:
            flow = self.flow
            if flow is not None:
                flow.pause_reading()
            try:
                await writer.drain()
            except ConnectionError:
                pass  # the broker went away; the pump sees the end and closes the socket
            finally:
                if flow is not None:
                    flow.resume_reading()
        return None

    async def pump(self) -> None:
        """Broker to browser until the broker closes the connection (or this task is cancelled)."""
        read = self.reader.read
        send = self.send
        flow = self.flow
        walker = self.downstream
        lock = self.send_lock
        try:
            while True:
                data = await read(CHUNK)
                if not data:
                    return
                async with lock:
                    if self.closed:
                        return
                    walker.feed(data)
                    await send({"type": "websocket.send", "bytes": data})
                metrics.TO_BROWSER.inc(len(data))
                if flow is not None and not flow.writable_now:
                    await flow.writable()
        except (ConnectionError, OSError, ProtocolError):
            return  # ProtocolError: a length the broker would never send; end all the same

    def farewell(self, refusal: Refusal, level: int) -> bytes | None:
        """An MQTT 5 DISCONNECT telling the browser why, when one may be sent now.

        Only between two packets, and only after the broker's CONNACK went through (the
        first packet a client gets must be CONNACK); MQTT 3.1.1 has no server DISCONNECT.
        """
        if level < 5 or not self.downstream.at_boundary or self.downstream.packets == 0:
            return None
        return encode(Disconnect(refusal.code, Properties(reason_string=refusal.reason)), 5)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):  # already closed or reset
            self.writer.close()
