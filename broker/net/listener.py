"""Listening sockets, the registry of live connections and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from dataclasses import replace

from broker.config import BrokerConfig, Listener
from broker.engine.broker import Broker
from broker.mqtt.reason_codes import ReasonCode
from broker.net.flow import WriteBatcher
from broker.net.protocol import MQTTProtocol
from broker.net.tls import server_context

logger = logging.getLogger("broker")


class Server:
    """Runs the listeners of one Broker and tracks every connection they accept."""

    def __init__(self, config: BrokerConfig, broker: Broker) -> None:
        self.config = config
        self.broker = broker
        self.protocols: set[MQTTProtocol] = set()
        self.batcher = WriteBatcher(asyncio.get_running_loop())
        self._servers: list[asyncio.AbstractServer] = []
        self._tls: ssl.SSLContext | None = None
        # Failed TLS handshakes by reason: these never reach the MQTT layer.
        self.tls_failures: Counter[str] = Counter()
        self.bound: list[tuple[Listener, int]] = []

    @property
    def tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = self._load_tls()
        return self._tls

    def _load_tls(self) -> ssl.SSLContext:
        config = self.config
        if not config.tls_cert or not config.tls_key:
            raise ValueError("a TLS listener needs --tls-cert and --tls-key")
        return server_context(config.tls_cert, config.tls_key, config.tls_ca, config.tls_crl,
                              config.tls_chain_ca)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._tls is None and any(listener.tls for listener in self.config.listeners):
            self._tls = self._load_tls()  # a missing certificate fails the start, not a client
        for listener in self.config.listeners:
            name = listener.name or listener.url()

            def factory(name: str = name, is_tls: bool = listener.tls,
                        is_websocket: bool = listener.websocket) -> MQTTProtocol:
                return MQTTProtocol(self, name, is_tls, is_websocket)

            # TLS and WebSocket run in the protocol (TlsSession, WebSocketSession) over a
            # plain transport.
            server = await loop.create_server(
                factory, listener.host or None, listener.port, backlog=1024, reuse_address=True,
            )
            self._servers.append(server)
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                self.bound.append((listener, port))
                logger.info("listening on %s", replace(listener, host=host).url(port))

    async def shutdown(self) -> None:
        """Stop accepting, tell clients we are going, wait for them briefly, then cut."""
        for server in self._servers:
            server.close()
        for protocol in list(self.protocols):
            conn = protocol.conn
            if conn is not None:
                conn.disconnect(ReasonCode.SERVER_SHUTTING_DOWN, publish_will=False)
        self.batcher.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace
        while self.protocols and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for protocol in list(self.protocols):
            protocol.abort()
        for server in self._servers:
            await server.wait_closed()
        self.broker.stop()
