"""Bridges: this broker as a client of another, forwarding topics in either direction.

Configured like Mosquitto's bridges (a `connection` section of a mosquitto.conf, see
`broker.mosquitto_conf`), and speaking to the remote broker as Mosquitto's bridge does,
packet for packet, with Roost's own codec: CONNECT as `HOSTNAME.NAME` with the bridge bit
on a 3.1.1 protocol level (`try_private`; dropped if the remote refuses it) or, in MQTT 5,
Receive Maximum as its only property; one SUBSCRIBE per `in`/`both` topic line (MQTT 5:
no-local and retain-as-published) and one UNSUBSCRIBE per `out` line
(`bridge_attempt_unsubscribe`); packet identifiers from one counter for the whole bridge,
kept across reconnections, and (with `local_cleansession false`) unacknowledged QoS 1/2
messages sent again with DUP after a reconnection; `restart_timeout` paces reconnections.
The local side needs no connection: messages coming in are published into the engine, and
messages going out are picked up by the engine's `published` hook, which returns True so an
MQTT 5 PUBACK does not say "no matching subscribers".

A message the bridge brought in carries the bridge's own session as its origin, so it is
never sent back out. What the bridge sent is not echoed back by a remote that honours the
bridge bit or no-local; a 3.1.1 bridge without them (`try_private false`, or refused)
whose in and out topics overlap drops the first copy of each message it sent that comes
back within ECHO_WINDOW seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import struct
import time
from collections import deque

from broker.config import BridgeSettings, BridgeTopic
from broker.engine.broker import Broker
from broker.engine.interfaces import Principal
from broker.engine.message import Message, message_from_properties
from broker.engine.session import Session
from broker.mqtt import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Properties,
    ProtocolError,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    StreamDecoder,
    Subscribe,
    Subscription,
    Unsubscribe,
    encode,
)
from broker.mqtt.filters import levels_match, overlaps

logger = logging.getLogger("broker")

ECHO_WINDOW = 10.0
CONNECT_TIMEOUT = 10.0


class _Lost(Exception):
    """The remote broker closed the connection or broke the protocol."""


class _Inflight:
    """A QoS 1/2 message sent to the remote broker and not yet acknowledged."""

    __slots__ = ("packet", "released")

    def __init__(self, packet: Publish) -> None:
        self.packet = packet
        self.released = False  # QoS 2: PUBREC received, PUBREL sent


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
        # Mosquitto's default client id, so a bridge moved over from it resumes its remote session.
        self.client_id = settings.client_id or f"{socket.gethostname()}.{name}"
        self.version = settings.protocol_version
        # The bridge bit on 3.1.1, until the remote refuses it (return code 1).
        self.private = settings.try_private and self.version < 5
        # Echo suppression, needed only where what goes out can come back in.
        self.overlapping = any(
            overlaps(o.remote_filter, i.remote_filter) for _, o in self.outgoing for _, i in self.incoming)
        self._sent: dict[tuple[str, bytes], deque[float]] = {}
        self._sent_at: deque[tuple[float, tuple[str, bytes]]] = deque()
        # QoS 1/2 messages waiting for the remote broker (unreachable, or its receive
        # maximum reached), oldest dropped first.
        self.backlog: deque[tuple[str, bytes, int, bool]] = deque(maxlen=broker.config.max_queued_messages)
        # Mosquitto's local_cleansession: whether the local side of the bridge keeps what the
        # remote has not taken yet across a disconnection.
        local_clean = settings.local_clean_session
        self.holds = not (settings.clean_session if local_clean is None else local_clean)
        self.restart_delay = settings.restart_timeout[0]
        self.inflight: dict[int, _Inflight] = {}
        self.qos2_in: set[int] = set()
        self.send_quota = 65535
        self._last_mid = 0
        self.connected = False
        self.connecting = False  # CONNECT sent, CONNACK awaited
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def echoes(self) -> bool:
        return self.overlapping and self.version < 5 and not self.private

    # ---- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if self.outgoing:
            self.broker.hooks.published.append(self._published)
        self._notify(False)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        writer = self._writer
        if writer is not None and self.connected:
            with contextlib.suppress(Exception):
                writer.write(encode(Disconnect(), self.version))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._published in self.broker.hooks.published:
            self.broker.hooks.published.remove(self._published)

    async def _run(self) -> None:
        """Connect, and connect again whenever the connection ends, until stopped."""
        s = self.settings
        while True:
            broken = False
            try:
                await self._connection()
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, ProtocolError, _Lost) as error:
                broken = isinstance(error, ProtocolError)
                if self.connected:
                    logger.warning("bridge %s: disconnected from %s:%d (%s)", s.name, s.host, s.port, error)
                else:
                    logger.warning("bridge %s: cannot connect to %s:%d (%s); retrying", s.name, s.host,
                                   s.port, error)
            except Exception:
                logger.exception("bridge %s: failed; retrying", s.name)
            finally:
                self.connecting = False
                writer, self._writer = self._writer, None
                if writer is not None:
                    if broken:
                        _reset(writer)
                    writer.close()
                if self.connected:
                    self.connected = False
                    self._notify(False)
                if not self.holds:
                    self.inflight.clear()
                    self.backlog.clear()
                elif any(qos == 0 for _, _, qos, _ in self.backlog):
                    self.backlog = deque((m for m in self.backlog if m[2]), maxlen=self.backlog.maxlen)
            await asyncio.sleep(self._next_delay())

    def _next_delay(self) -> float:
        """Mosquitto's restart_timeout: constant, or decorrelated jitter between base and cap."""
        base, cap = self.settings.restart_timeout
        delay = self.restart_delay
        if cap > base:
            self.restart_delay = min(cap, random.uniform(base, delay * 3))  # noqa: S311 (jitter, not a secret)
        return delay

    async def _connection(self) -> None:
        s = self.settings
        # asyncio.timeout, not wait_for: in Python 3.11 wait_for swallows a cancellation that
        # arrives as the awaited read ends (the remote closing while the broker stops), and the
        # bridge then went on reconnecting after shutdown.
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(s.host, s.port, ssl=self._tls())
        self._writer = writer
        version = self.version
        writer.write(encode(self._connect_packet(), version))
        self.connecting = True
        decoder = StreamDecoder(server_side=False, protocol_level=version, accept_pingreq=True)
        pending: deque[object] = deque()
        async with asyncio.timeout(CONNECT_TIMEOUT):
            connack = await self._next(reader, decoder, pending)
        if not isinstance(connack, Connack):
            raise _Lost(f"expected CONNACK, got {type(connack).__name__}")
        if connack.reason_code:
            if self.private and connack.reason_code == 1:
                # A remote that does not know the bridge bit: go on without it, as Mosquitto.
                logger.info("bridge %s: the remote refused the bridge protocol level; "
                            "connecting as a plain 3.1.1 client", s.name)
                self.private = False
            raise _Lost(f"refused with code {connack.reason_code}")
        self._on_connack(connack)
        keepalive = s.keepalive or None
        pinged = False
        while True:
            try:
                async with asyncio.timeout(keepalive):
                    packet = await self._next(reader, decoder, pending)
            except TimeoutError:
                if pinged:
                    raise _Lost("the remote stopped answering") from None
                pinged = True
                self._write(Pingreq())
                continue
            pinged = False
            self._on_packet(packet)

    async def _next(self, reader: asyncio.StreamReader, decoder: StreamDecoder,
                    pending: deque[object]) -> object:
        while not pending:
            data = await reader.read(65536)
            if not data:
                raise _Lost("connection closed")
            pending.extend(decoder.feed(data))
        return pending.popleft()

    def _connect_packet(self) -> Connect:
        s = self.settings
        props = None
        if self.version >= 5:
            props = Properties(receive_maximum=max(1, min(self.broker.config.max_inflight, 65535)))
        password = s.password.encode("utf-8") if s.password is not None else None
        return Connect(protocol_level=self.version, clean_start=s.clean_session, keep_alive=s.keepalive,
                       client_id=self.client_id, username=s.username, password=password,
                       properties=props, bridge=self.private)

    def _tls(self) -> ssl.SSLContext | None:
        s = self.settings
        if not s.cafile:
            return None
        context = ssl.create_default_context(cafile=s.cafile)
        if s.certfile:
            context.load_cert_chain(s.certfile, s.keyfile)
        if s.insecure:
            context.check_hostname = False
        return context

    def _write(self, packet: object) -> None:
        if self._writer is not None:
            self._writer.write(encode(packet, self.version))  # type: ignore[arg-type]

    def _next_mid(self) -> int:
        """One counter for every packet id the bridge uses, as in Mosquitto."""
        mid = self._last_mid
        while True:
            mid = mid + 1 if mid < 0xFFFF else 1
            if mid not in self.inflight:
                self._last_mid = mid
                return mid

    # ---- remote events -------------------------------------------------------------

    def _on_connack(self, connack: Connack) -> None:
        s = self.settings
        self.connected, self.connecting = True, False
        self.restart_delay = s.restart_timeout[0]
        logger.info("bridge %s: connected to %s:%d", s.name, s.host, s.port)
        props = connack.properties
        self.send_quota = props.receive_maximum if props is not None and props.receive_maximum else 65535
        v5 = self.version >= 5
        for topic in s.topics:
            if topic.direction in ("in", "both"):
                option = Subscription(topic.remote_filter, topic.qos, no_local=v5, retain_as_published=v5)
                self._write(Subscribe(self._next_mid(), [option]))
            elif s.attempt_unsubscribe:
                # An out-only topic: undo a subscription an earlier configuration may have left.
                self._write(Unsubscribe(self._next_mid(), [topic.remote_filter]))
        self._notify(True)
        for mid, sent in self.inflight.items():
            packet = sent.packet
            if sent.released:
                self._write(Pubrel(mid))
            else:
                self._write(Publish(packet.topic, packet.payload, packet.qos, packet.retain, True, mid))
        self._queue_retained()
        self._send_backlog()

    def _send_backlog(self) -> None:
        backlog = self.backlog
        while backlog and len(self.inflight) < self.send_quota:
            self._send(*backlog.popleft())

    def _on_packet(self, packet: object) -> None:
        if isinstance(packet, Publish):
            self._on_publish(packet)
        elif isinstance(packet, Puback | Pubcomp):
            if self.inflight.pop(packet.packet_id, None) is not None:
                self._send_backlog()
        elif isinstance(packet, Pubrec):
            sent = self.inflight.get(packet.packet_id)
            if sent is not None and packet.reason_code >= 0x80:
                del self.inflight[packet.packet_id]
                self._send_backlog()
                return
            if sent is not None:
                sent.released = True
            self._write(Pubrel(packet.packet_id))
        elif isinstance(packet, Pubrel):
            self.qos2_in.discard(packet.packet_id)
            self._write(Pubcomp(packet.packet_id))
        elif isinstance(packet, Pingreq):
            self._write(Pingresp())
        elif isinstance(packet, Disconnect):
            raise _Lost(f"DISCONNECT 0x{packet.reason_code:02X}")

    def _on_publish(self, packet: Publish) -> None:
        mid = packet.packet_id
        if packet.qos == 2 and mid is not None:
            if mid not in self.qos2_in:
                self.qos2_in.add(mid)
                self._deliver(packet)
            self._write(Pubrec(mid))
            return
        self._deliver(packet)
        if packet.qos == 1 and mid is not None:
            self._write(Puback(mid))

    def _deliver(self, packet: Publish) -> None:
        topic = packet.topic
        payload = bytes(packet.payload)
        if self.echoes and self._is_echo(topic, payload):
            return
        levels = topic.split("/")
        for filter_levels, t in self.incoming:
            if levels_match(filter_levels, levels):
                local = t.local_prefix + topic[len(t.remote_prefix):]
                message = Message(local, payload, min(packet.qos, t.qos), packet.retain, None, None,
                                  self.session)
                self.broker.publish(message)
                return

    # ---- local messages ------------------------------------------------------------

    def _published(self, principal: Principal | None, message: Message) -> bool:
        """Forward a local message on an outgoing topic; True when it was one."""
        if message.origin is self.session:
            return False
        out = self._outgoing(message)
        if out is None:
            return False
        qos = out[2]
        if self.connected and not (qos and len(self.inflight) >= self.send_quota):
            self._send(*out)
        elif self.connected or self.connecting or (qos and self.holds):
            # Between CONNECT and CONNACK even QoS 0 waits, as Mosquitto writes it after CONNECT.
            self.backlog.append(out)
        return True

    def _outgoing(self, message: Message) -> tuple[str, bytes, int, bool] | None:
        """The remote topic, payload, QoS and retain flag of a local message, if it goes out."""
        topic = message.topic
        levels = topic.split("/")
        for filter_levels, t in self.outgoing:
            if levels_match(filter_levels, levels):
                retain = message.retain and self.settings.outgoing_retain
                return t.remote_prefix + topic[len(t.local_prefix):], message.payload, min(message.qos, t.qos), retain
        return None

    def _queue_retained(self) -> None:
        """On every connection, the retained messages of the outgoing topics go out, as
        Mosquitto's bridge subscribes to them locally again and gets them as a new subscriber."""
        seen: set[str] = set()
        for _, t in self.outgoing:
            for message in self.broker.retained.match(t.local_filter):
                if message.topic not in seen:
                    seen.add(message.topic)
                    out = self._outgoing(message)
                    if out is not None:
                        self.backlog.append(out)

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if self.echoes:
            self._expect_echo(topic, payload)
        mid = None
        if qos:
            mid = self._next_mid()
        packet = Publish(topic, payload, qos, retain, False, mid)
        if mid is not None:
            self.inflight[mid] = _Inflight(packet)
        self._write(packet)

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


def _reset(writer: asyncio.StreamWriter) -> None:
    """Make the close a TCP reset: the remote broke the protocol, so nothing it sent or is
    sending counts, and it learns so at once (as from Mosquitto, whose close leaves the
    remote's next packets unread)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


__all__ = ["Bridge", "BridgeSettings", "BridgeTopic"]

