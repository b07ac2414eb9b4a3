"""MQTT over WebSocket (MQTT 5.0 section 6): the server side, with wsproto.

A `WebSocketSession` sits between the transport (or the TLS session, for wss) and the
engine: it answers the HTTP upgrade, turns binary frames into the MQTT byte stream and
the engine's output into binary frames. MQTT packets may span frames and frames may hold
several packets; the engine's stream decoder sees only the bytes.
"""

from __future__ import annotations

import contextlib

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

# What clients ask for: "mqtt" for 3.1.1 and 5.0 [MQTT-6.0.0-3], "mqttv3.1" for MQTT 3.1.
SUBPROTOCOLS = ("mqtt", "mqttv3.1")
UNSUPPORTED_DATA = 1003  # RFC 6455 close code: a text frame where MQTT needs binary


class WebSocketError(Exception):
    """The peer broke the WebSocket protocol or asked for something else than MQTT."""


class WebSocketSession:
    """One server-side WebSocket connection carrying MQTT; see the module docstring."""

    __slots__ = ("_ws", "_replies", "established", "closed")

    def __init__(self) -> None:
        self._ws = WSConnection(ConnectionType.SERVER)
        self._replies: list[bytes] = []
        self.established = False
        # The peer sent a close frame (or we refused it): nothing more will come.
        self.closed = False

    def receive(self, data: bytes) -> bytes:
        """The MQTT bytes `data` carried; replies (handshake, pong, close) wait in `outgoing()`."""
        ws = self._ws
        chunks: list[bytes | bytearray] = []
        try:
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, BytesMessage):
                    chunks.append(event.data)
                elif isinstance(event, Request):
                    self._upgrade(event)
                elif isinstance(event, Ping):
                    self._replies.append(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        self._replies.append(ws.send(event.response()))
                    self.closed = True
                elif isinstance(event, TextMessage):
                    # MQTT data must travel in binary frames [MQTT-6.0.0-1].
                    self._replies.append(ws.send(CloseConnection(UNSUPPORTED_DATA, "MQTT needs binary frames")))
                    self.closed = True
                    raise WebSocketError("a text frame where MQTT needs binary frames")
        except RemoteProtocolError as error:
            hint = error.event_hint
            if isinstance(hint, (RejectConnection, CloseConnection)):
                # The state machine may refuse to send it; the connection closes anyway.
                with contextlib.suppress(LocalProtocolError):
                    self._replies.append(ws.send(hint))
            self.closed = True
            raise WebSocketError(str(error)) from None
        if len(chunks) == 1 and isinstance(chunks[0], bytes):
            return chunks[0]
        return b"".join(chunks)

    def _upgrade(self, request: Request) -> None:
        offered = [p.strip() for p in request.subprotocols]
        chosen = next((p for p in SUBPROTOCOLS if p in offered), None)
        if chosen is None:
            self._replies.append(self._ws.send(RejectConnection(status_code=400)))
            self.closed = True
            raise WebSocketError(f"no MQTT subprotocol offered (got {offered or 'none'})")
        self._replies.append(self._ws.send(AcceptConnection(subprotocol=chosen)))
        self.established = True

    def outgoing(self) -> bytes:
        replies = self._replies
        if not replies:
            return b""
        self._replies = []
        return b"".join(replies)

    def wrap(self, data: bytes | bytearray) -> bytes:
        """One binary frame carrying `data`."""
        return self._ws.send(BytesMessage(data=bytes(data)))

    def shutdown(self) -> bytes:
        """A close frame, when the connection is open; the peer's answer is not waited for."""
        if self._ws.state is ConnectionState.OPEN:
            return self.outgoing() + self._ws.send(CloseConnection(1000))
        return self.outgoing()
