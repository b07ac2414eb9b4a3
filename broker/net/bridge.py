"""Bridges: this broker as a client of another, forwarding topics in either direction.

Configured like Mosquitto's bridges (a `connection` section of a mosquitto.conf, see
`broker.mosquitto_conf`). The remote side is a gmqtt client that reconnects by itself;
the local side needs no connection: messages coming in are published into the engine,
and messages going out are picked up by the engine's `published` hook.

A message the bridge brought in carries the bridge's own session as its origin, so it is
never sent back out. MQTT 5 bridges subscribe with no-local, so the remote broker does not
echo what the bridge sent it; an MQTT 3.1.1 bridge has no such option, so when its in and
out topics overlap it drops the first copy of each message it sent that comes back within
ECHO_WINDOW seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import deque
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from gmqtt.mqtt.handler import MQTTConnectError

from broker.config import BridgeSettings, BridgeTopic
from broker.engine.broker import Broker
from broker.engine.interfaces import Principal
from broker.engine.message import Message, message_from_properties
from broker.engine.session import Session
from broker.mqtt.filters import levels_match, overlaps

logger = logging.getLogger("broker")

RETRY_DELAY = 2.0
ECHO_WINDOW = 10.0


class Bridge:
    """One bridge connection; `start` it on the running loop, `stop` it at shutdown."""

    def __init__(self, broker: Broker, settings: BridgeSettings) -> None:
        self.broker = broker
        self.settings = settings
        name = settings.name
        # The origin of every message the bridge publishes locally: never forwarded back.
        self.session = Session(f"bridge:{name}", "", Principal(f"bridge:{name}"))
        # Each topic line with the filter it matches, split once: (levels, line).
        self.outgoing = [(t.local_filter.split("/"), t) for t in settings.topics if t.direction in ("out", "both")]
        self.incoming = [(t.remote_filter.split("/"), t) for t in settings.topics if t.direction in ("in", "both")]
        # MQTT 3.1.1 echo suppression, needed only where what goes out can come back in.
        self.echoes = settings.protocol_version < 5 and any(
            overlaps(o.remote_filter, i.remote_filter) for _, o in self.outgoing for _, i in self.incoming)
        self._sent: dict[tuple[str, bytes], deque[float]] = {}
        self._sent_at: deque[tuple[float, tuple[str, bytes]]] = deque()
        # QoS 1/2 messages for the remote broker while it is unreachable, oldest dropped first.
        self.backlog: deque[tuple[str, bytes, int, bool]] = deque(maxlen=broker.config.max_queued_messages)
        self.client: gmqtt.Client | None = None
        self.connected = False
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if self.outgoing:
            self.broker.hooks.published.append(self._published)
        self._notify(False)
        self._task = asyncio.get_running_loop().create_task(self._connect())
        self._task.add_done_callback(self._connect_done)

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("bridge %s: gave up: %r", self.settings.name, task.exception())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.client is not None and self.client.is_connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.disconnect(), 2)
        if self._published in self.broker.hooks.published:
            self.broker.hooks.published.remove(self._published)

    async def _connect(self) -> None:
        """Connect, retrying until the remote answers; gmqtt reconnects after that."""
        s = self.settings
        options: dict[str, Any] = {}
        if not s.clean_session and s.protocol_version == 5:
            options["session_expiry_interval"] = 0xFFFFFFFF  # what cleansession false means
        # Mosquitto's default id, so a bridge moved over from it resumes its remote session.
        client_id = s.client_id or f"{socket.gethostname()}.{s.name}"
        client = gmqtt.Client(client_id, clean_session=s.clean_session, **options)
        if s.username is not None:
            client.set_auth_credentials(s.username, s.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.set_config({"reconnect_retries": -1, "reconnect_delay": RETRY_DELAY})
        self.client = client
        version = MQTTv50 if s.protocol_version == 5 else MQTTv311
        while True:
            try:
                await client.connect(s.host, s.port, ssl=self._tls(), keepalive=s.keepalive, version=version)
                return
            except (OSError, TimeoutError, MQTTConnectError) as error:
                logger.warning("bridge %s: cannot connect to %s:%d (%s); retrying", s.name, s.host, s.port, error)
                await asyncio.sleep(RETRY_DELAY)

    def _tls(self) -> ssl.SSLContext | bool:
        s = self.settings
        if not s.cafile:
            return False
        context = ssl.create_default_context(cafile=s.cafile)
        if s.certfile:
            context.load_cert_chain(s.certfile, s.keyfile)
        if s.insecure:
            context.check_hostname = False
        return context

    # ---- remote events -------------------------------------------------------------

    def _on_connect(self, client: gmqtt.Client, flags: int, rc: int, properties: dict[str, Any]) -> None:
        self.connected = True
        logger.info("bridge %s: connected to %s:%d", self.settings.name, self.settings.host, self.settings.port)
        no_local = self.settings.protocol_version == 5
        subscriptions = [gmqtt.Subscription(t.remote_filter, qos=t.qos, no_local=no_local)
                         for _, t in self.incoming]
        if subscriptions:
            client.subscribe(subscriptions)
        self._notify(True)
        backlog = self.backlog
        if backlog:
            logger.info("bridge %s: sending %d message(s) held while disconnected", self.settings.name, len(backlog))
        while backlog:
            topic, payload, qos, retain = backlog.popleft()
            client.publish(topic, payload, qos=qos, retain=retain)

    def _on_disconnect(self, client: gmqtt.Client, packet: Any, exc: Exception | None = None) -> None:
        if self.connected:
            logger.warning("bridge %s: disconnected from %s:%d", self.settings.name, self.settings.host,
                           self.settings.port)
        self.connected = False
        self._notify(False)

    def _on_message(self, client: gmqtt.Client, topic: str, payload: bytes, qos: int,
                    properties: dict[str, Any]) -> int:
        if self.echoes and self._is_echo(topic, bytes(payload)):
            return 0
        levels = topic.split("/")
        for filter_levels, t in self.incoming:
            if levels_match(filter_levels, levels):
                local = t.local_prefix + topic[len(t.remote_prefix):]
                retain = bool(properties.get("retain"))
                message = Message(local, bytes(payload), min(qos, t.qos), retain, None, None, self.session)
                self.broker.publish(message)
                break
        return 0  # PUBACK / PUBREC: success

    # ---- local messages ------------------------------------------------------------

    def _published(self, principal: Principal | None, message: Message) -> None:
        if message.origin is self.session:
            return
        topic = message.topic
        levels = topic.split("/")
        for filter_levels, t in self.outgoing:
            if levels_match(filter_levels, levels):
                remote = t.remote_prefix + topic[len(t.local_prefix):]
                qos = min(message.qos, t.qos)
                if not self.connected or self.client is None:
                    if qos:
                        self.backlog.append((remote, message.payload, qos, message.retain))
                    return
                if self.echoes:
                    self._expect_echo(remote, message.payload)
                self.client.publish(remote, message.payload, qos=qos, retain=message.retain)
                return

    def _expect_echo(self, topic: str, payload: bytes) -> None:
        now = time.monotonic()
        self._forget_echoes(now)
        key = (topic, payload)
        self._sent.setdefault(key, deque()).append(now)
        self._sent_at.append((now, key))

    def _is_echo(self, topic: str, payload: bytes) -> bool:
        self._forget_echoes(time.monotonic())
        pending = self._sent.get((topic, payload))
        if not pending:
            return False
        pending.popleft()  # the oldest copy sent is the one coming back
        return True

    def _forget_echoes(self, now: float) -> None:
        sent_at, sent = self._sent_at, self._sent
        while sent_at and now - sent_at[0][0] > ECHO_WINDOW:
            when, key = sent_at.popleft()
            pending = sent.get(key)
            if pending and pending[0] <= when:
                pending.popleft()  # never came back
            if not pending:
                sent.pop(key, None)

    def _notify(self, up: bool) -> None:
        """Mosquitto's bridge notification: a retained 1 or 0 on the connection's state topic."""
        if not self.settings.notifications:
            return
        topic = f"$SYS/broker/connection/{self.settings.name}/state"
        self.broker.publish(message_from_properties(topic, b"1" if up else b"0", 1, True, None,
                                                    self.broker.now(), self.session))


__all__ = ["Bridge", "BridgeSettings", "BridgeTopic"]
