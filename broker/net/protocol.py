"""One asyncio Protocol per client connection, bridging the transport and the engine."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import socket
import ssl
import struct
import termios
from typing import TYPE_CHECKING, cast

from broker.engine.connection import Connection
from broker.mqtt.decoder import StreamDecoder
from broker.net.tls import TlsSession, handshake_failure_reason
from broker.net.websocket import WebSocketError, WebSocketSession

if TYPE_CHECKING:
    from broker.net.listener import Server

# What may sit between the socket and MQTT: TLS, WebSocket, or TLS then WebSocket (wss).
Layer = TlsSession | WebSocketSession


logger = logging.getLogger("broker")

_LINGER_RESET = struct.pack("ii", 1, 0)
CLOSE_TIMEOUT = 5.0


class MQTTProtocol(asyncio.Protocol):
    """Implements the engine's `Link` over an asyncio transport."""

    __slots__ = ("server", "listener", "tls", "websocket", "layers", "transport", "conn",
                 "remote_address", "peer_certificates", "lost", "_out", "_pending", "_high",
                 "_paused", "_over")

    def __init__(self, server: Server, listener: str, tls: bool, websocket: bool = False) -> None:
        self.server = server
        self.listener = listener
        self.tls = tls
        self.websocket = websocket
        # Outermost first; None for plain MQTT over TCP, the fast path.
        self.layers: tuple[Layer, ...] | None = None
        self.transport: asyncio.Transport | None = None
        self.conn: Connection | None = None
        self.remote_address: tuple[str, int] | None = None
        self.peer_certificates: tuple[bytes, ...] = ()
        self._out: list[bytes | bytearray] | None = None
        # Bytes in `_out`. One loop iteration can read megabytes from many publishers
        # (libuv reads up to 2 MiB per socket per iteration), all of it for one subscriber:
        # a batch past the high-water mark counts as backlogged (`_over`) just as a
        # transport buffer past it does (`_paused`), so the engine's limits see it before
        # it reaches the transport.
        self._pending = 0
        self._high = server.config.write_high_water
        self._paused = False
        self._over = False
        self.lost = False

    # ---- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        server = self.server
        config = server.config
        if config.max_connections and len(server.protocols) >= config.max_connections:
            transport.abort()
            return
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.remote_address = (str(peer[0]), int(peer[1]))
        if self.tls or self.websocket:
            # The engine's connect timeout runs from here, so it bounds the handshakes too.
            layers: list[Layer] = []
            if self.tls:
                layers.append(TlsSession(server.tls_context))
            if self.websocket:
                layers.append(WebSocketSession())
            self.layers = tuple(layers)
        transport.set_write_buffer_limits(high=config.write_high_water)
        server.protocols.add(self)
        self.conn = Connection(
            server.broker, self, StreamDecoder(max_packet_size=config.max_packet_size)
        )

    def data_received(self, data: bytes) -> None:
        layers = self.layers
        if layers is not None:
            data = self._unwrap(layers, data)
            if not data:
                return
        conn = self.conn
        if conn is not None:
            conn.data_received(data)

    def _unwrap(self, layers: tuple[Layer, ...], data: bytes) -> bytes:
        """Peel TLS and WebSocket off `data`; their own replies go back out at once."""
        for depth, layer in enumerate(layers):
            established = layer.established
            try:
                data = layer.receive(data)
            except (ssl.SSLError, WebSocketError) as error:
                self._layer_failed(depth, layer, established, error)
                return b""
            reply = layer.outgoing()
            if reply:
                self._write_below(depth, reply)
            if not established and layer.established and isinstance(layer, TlsSession):
                self.peer_certificates = layer.peer_chain()
            if layer.closed:
                # The peer said goodbye (close_notify, close frame): hand over what came
                # with it, then close.
                asyncio.get_running_loop().call_soon(self.close)
            if not data:
                return b""
        return data

    def _write_below(self, depth: int, data: bytes) -> None:
        """Send what layer `depth` produced through the layers outside it."""
        layers = self.layers
        transport = self.transport
        assert layers is not None and transport is not None
        for outer in reversed(layers[:depth]):
            data = outer.wrap(data)
        transport.write(data)

    def _layer_failed(self, depth: int, layer: Layer, established: bool, error: Exception) -> None:
        transport = self.transport
        assert transport is not None
        if isinstance(layer, TlsSession) and established:
            logger.debug("TLS error from %s: %s", self.remote_address, error)
            self.abort()  # nothing more can be written on a broken TLS session
            return
        host = self.remote_address[0] if self.remote_address else "?"
        if isinstance(error, ssl.SSLError):
            reason = handshake_failure_reason(error)
            self.server.tls_failures[reason] += 1
            logger.info("TLS handshake from %s refused: %s", host, reason)
        else:
            logger.info("WebSocket from %s closed: %s", host, error)
        goodbye = layer.outgoing()  # the TLS alert, the HTTP 400 or the close frame
        if goodbye:
            self._write_below(depth, goodbye)
        transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.protocols.discard(self)
        self._out = None
        self._pending = 0
        self.lost = True
        conn = self.conn
        if conn is not None:
            conn.connection_lost()

    def pause_writing(self) -> None:
        self._paused = True
        if self.conn is not None and not self._over:
            self.conn.set_backlogged(True)

    def resume_writing(self) -> None:
        self._paused = False
        if self.conn is not None and not self._over:
            self.conn.set_backlogged(False)

    # ---- Link --------------------------------------------------------------------

    def write(self, data: bytes | bytearray) -> None:
        out = self._out
        if out is None:
            self._out = [data]
            self._pending = len(data)
            self.server.batcher.mark(self)
        else:
            out.append(data)
            pending = self._pending = self._pending + len(data)
            if pending > self._high and not self._over:
                self._over = True
                if not self._paused and self.conn is not None:
                    self.conn.set_backlogged(True)

    def flush(self) -> None:
        out = self._out
        self._out = None
        self._pending = 0
        transport = self.transport
        if not out or transport is None or transport.is_closing():
            self._over = False
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        self.server.broker.stats.bytes_sent += len(data)
        layers = self.layers
        if layers is not None:
            for layer in reversed(layers):
                if not layer.established:
                    self._over = False
                    return  # nothing is sent before the handshakes; the engine waits for CONNECT
                data = layer.wrap(data)
        transport.write(data)  # may call pause_writing
        if self._over:
            self._over = False
            if not self._paused and self.conn is not None and not self.lost:
                self.conn.set_backlogged(False)

    def close(self) -> None:
        transport = self.transport
        if transport is None:
            return
        self.flush()
        layers = self.layers
        if layers is not None and not transport.is_closing():
            # Innermost first: the WebSocket close frame travels inside TLS, then close_notify.
            for depth in range(len(layers) - 1, -1, -1):
                goodbye = layers[depth].shutdown()
                if goodbye:
                    self._write_below(depth, goodbye)
        transport.close()
        if transport.get_write_buffer_size():
            # A peer that does not read would keep a closing transport alive forever.
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._close_expired)

    def _close_expired(self) -> None:
        if not self.lost:
            self.abort()

    def abort(self) -> None:
        self._out = None
        self._pending = 0
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns the close into a reset: without it the kernel keeps the unsent
            # bytes (and the peer its half of the connection) for as long as the peer does
            # not read, which is exactly the peer we are giving up on.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()

    def pause_reading(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and transport.is_reading():
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and not transport.is_reading():
            transport.resume_reading()

    def buffered(self) -> int:
        transport = self.transport
        pending = self._pending
        return transport.get_write_buffer_size() + pending if transport is not None else pending

    def unsent(self) -> int:
        """`buffered()` plus what the kernel holds unacknowledged: whether a goodbye could
        still reach the peer. Not for the hot path (a system call)."""
        size = self.buffered()
        transport = self.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                size += struct.unpack("i", queued)[0]
        return size
