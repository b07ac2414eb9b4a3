"""One asyncio Protocol per client connection, bridging the transport and the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from typing import TYPE_CHECKING, cast

from broker.engine.connection import Connection
from broker.mqtt.decoder import StreamDecoder
from broker.net.tls import TlsSession, handshake_failure_reason

if TYPE_CHECKING:
    from broker.net.listener import Server


logger = logging.getLogger("broker")

_LINGER_RESET = struct.pack("ii", 1, 0)
CLOSE_TIMEOUT = 5.0


class MQTTProtocol(asyncio.Protocol):
    """Implements the engine's `Link` over an asyncio transport."""

    __slots__ = ("server", "listener", "tls", "session", "transport", "conn", "remote_address",
                 "peer_certificates", "lost", "_out")

    def __init__(self, server: Server, listener: str, tls: bool) -> None:
        self.server = server
        self.listener = listener
        self.tls = tls
        self.session: TlsSession | None = None
        self.transport: asyncio.Transport | None = None
        self.conn: Connection | None = None
        self.remote_address: tuple[str, int] | None = None
        self.peer_certificates: tuple[bytes, ...] = ()
        self._out: list[bytes | bytearray] | None = None
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
        if self.tls:
            # The engine's connect timeout runs from here, so it bounds the handshake too.
            self.session = TlsSession(server.tls_context)
        transport.set_write_buffer_limits(high=config.write_high_water)
        server.protocols.add(self)
        self.conn = Connection(
            server.broker, self, StreamDecoder(max_packet_size=config.max_packet_size)
        )

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is not None:
            data = self._decrypt(session, data)
            if not data:
                return
        conn = self.conn
        if conn is not None:
            conn.data_received(data)

    def _decrypt(self, session: TlsSession, data: bytes) -> bytes:
        transport = self.transport
        assert transport is not None
        established = session.established
        try:
            data = session.receive(data)
        except ssl.SSLError as error:
            if not established:
                self._refuse_handshake(session, error)
            else:
                logger.debug("TLS error from %s: %s", self.remote_address, error)
                self.abort()
            return b""
        reply = session.outgoing()
        if reply:
            transport.write(reply)
        if not established and session.established:
            self.peer_certificates = session.peer_chain()
        if session.closed:
            # After the peer's close_notify: hand over what came with it, then close.
            asyncio.get_running_loop().call_soon(self.close)
        return data

    def _refuse_handshake(self, session: TlsSession, error: ssl.SSLError) -> None:
        reason = handshake_failure_reason(error)
        self.server.tls_failures[reason] += 1
        host = self.remote_address[0] if self.remote_address else "?"
        logger.info("TLS handshake from %s refused: %s", host, reason)
        transport = self.transport
        assert transport is not None
        alert = session.outgoing()
        if alert:
            transport.write(alert)
        transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.protocols.discard(self)
        self._out = None
        self.lost = True
        conn = self.conn
        if conn is not None:
            conn.connection_lost()

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.set_backlogged(True)

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.conn.set_backlogged(False)

    # ---- Link --------------------------------------------------------------------

    def write(self, data: bytes | bytearray) -> None:
        out = self._out
        if out is None:
            self._out = [data]
            self.server.batcher.mark(self)
        else:
            out.append(data)

    def flush(self) -> None:
        out = self._out
        self._out = None
        transport = self.transport
        if not out or transport is None or transport.is_closing():
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        self.server.broker.stats.bytes_sent += len(data)
        session = self.session
        if session is not None:
            if not session.established:
                return  # nothing is sent before the handshake; the engine waits for CONNECT
            data = session.encrypt(data)
        transport.write(data)

    def close(self) -> None:
        transport = self.transport
        if transport is None:
            return
        self.flush()
        session = self.session
        if session is not None and not transport.is_closing():
            goodbye = session.shutdown()
            if goodbye:
                transport.write(goodbye)
        transport.close()
        if transport.get_write_buffer_size():
            # A peer that does not read would keep a closing transport alive forever.
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._close_expired)

    def _close_expired(self) -> None:
        if not self.lost:
            self.abort()

    def abort(self) -> None:
        self._out = None
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
        return transport.get_write_buffer_size() if transport is not None else 0
