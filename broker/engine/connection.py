"""One client connection's MQTT state machine, without I/O.

The network layer hands bytes to `data_received` and implements `Link` for what goes
back; tests join a Connection to an in-memory Link. Everything that spans sessions
(routing, retained messages, takeover) is the Broker's. This module handles what the
client sends; the flows of what it is sent (PUBLISH out, its acknowledgements, resending
after a reconnection) are in `outbound`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from broker.engine import durability, outbound
from broker.engine.handshake import handle_connect
from broker.engine.interfaces import (
    CONTROL_TOPICS,
    ClientInfo,
    Decision,
    Principal,
    authorize_publish,
)
from broker.engine.journal import HeldLink
from broker.engine.message import Message, message_from_properties
from broker.engine.queues import DROP_TOO_LARGE
from broker.engine.states import AUTHENTICATING, CLOSED, CONNECTED, NEW
from broker.engine.subscribing import handle_subscribe, handle_unsubscribe
from broker.mqtt.encoder import encode, encode_ack
from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Packet,
    Puback,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    Unsubscribe,
)
from broker.mqtt.reason_codes import (
    CONNACK_REASONS,
    DISCONNECT_REASONS,
    ReasonCode,
    connack_code_311,
)
from broker.mqtt.topics import is_share_name

if TYPE_CHECKING:
    from broker.engine.broker import Broker
    from broker.engine.retained import Slot
    from broker.engine.session import Session
    from broker.engine.topics import SubOptions
    from broker.mqtt.decoder import StreamDecoder
    from broker.mqtt.packets import Will


class Link(Protocol):
    """The transport side of a connection, implemented by `broker.net.protocol`."""

    listener: str
    remote_address: tuple[str, int] | None
    peer_certificates: tuple[bytes, ...]

    def write(self, data: bytes | bytearray) -> None:
        """Queue bytes; they may be sent later in the same event-loop iteration."""

    def close(self) -> None:
        """Send what is queued, then close."""

    def abort(self) -> None:
        """Close now, dropping what is queued."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def buffered(self) -> int:
        """Bytes written but not yet accepted by the kernel."""
        ...


logger = logging.getLogger(__name__)

_PINGRESP = b"\xd0\x00"


class Connection:
    """Protocol state of one network connection."""

    __slots__ = (
        "broker", "link", "decoder", "state", "level", "v5", "session", "principal",
        "client_id", "keep_alive", "last_rx", "max_out", "alias_in", "alias_out",
        "alias_out_max", "send_quota", "held", "backlogged", "shedding", "backlog_since", "condemned",
        "will", "strip", "clean_start", "opened_at", "gate", "bridge", "retained_pending",
        "__weakref__",
    )

    def __init__(self, broker: Broker, link: Link, decoder: StreamDecoder) -> None:
        self.broker = broker
        journal = broker.journal
        # At durability "ack", what we write waits when it acknowledges something not yet
        # on disk (and everything after it waits too, to keep the order).
        self.link: Link = link
        self.gate: HeldLink | None = None
        if journal is not None and journal.holds:
            self.gate = HeldLink(link, journal, self)
        self.decoder = decoder
        self.state = NEW
        self.level = 4
        self.v5 = False
        self.session: Session | None = None
        self.principal: Principal | None = None
        self.client_id = ""
        self.keep_alive = 0
        self.opened_at = self.last_rx = broker.now()
        self.max_out = 0xFFFFFFFF
        self.alias_in: dict[int, str] | None = None
        self.alias_out: dict[str, int] | None = None
        self.alias_out_max = 0
        self.send_quota = broker.config.max_inflight
        self.held: list[Packet] | None = None
        self.backlogged = False
        # Past max_write_buffer: QoS 0 for it is dropped without a look at its buffer until
        # the socket drains to its low-water mark (set_backlogged(False)).
        self.shedding = False
        self.backlog_since = 0.0
        # Retained messages a subscription matched, not yet sent: where each was, the
        # message, the subscription's options.
        self.retained_pending: deque[tuple[Slot, Message, SubOptions]] | None = None
        # Overflowed with --slow-client disconnect: its disconnection is scheduled.
        self.condemned = False
        self.will: Will | None = None
        self.strip = 0
        self.clean_start = True
        self.bridge = False  # a Mosquitto-style bridge (see Connect.bridge)
        broker.connections.add(self)

    def __repr__(self) -> str:
        return f"<Connection {self.client_id!r} state={self.state}>"

    def hold_output(self) -> None:
        """What is written from now on waits until the journal has all it has been given."""
        gate = self.gate
        if gate is not None:
            gate.hold()

    # ---- input -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.state == CLOSED:
            return
        broker = self.broker
        self.last_rx = broker.now()
        broker.stats.bytes_received += len(data)
        try:
            try:
                packets = self.decoder.feed(data)
            except ProtocolError as error:
                self.handle_packets(getattr(error, "packets", None) or [])
                if self.state != CLOSED:
                    self.protocol_error(error.reason_code)
                return
            self.handle_packets(packets)
        except Exception:
            # A bug (ours or a plugged-in authorizer's) costs this connection, not the broker.
            logger.exception("closing %r after an internal error", self)
            if self.state != CLOSED:
                self.disconnect(ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR)

    def handle_packets(self, packets: list[Packet]) -> None:
        handlers = _HANDLERS
        for i, packet in enumerate(packets):
            state = self.state
            if state == CLOSED:
                return
            if state == AUTHENTICATING:
                held = self.held
                if held is None:
                    held = self.held = []
                held.extend(packets[i:])
                return
            handlers[packet.packet_type](self, packet)

    def connection_lost(self) -> None:
        """The transport closed under us: an ungraceful end unless we closed it first."""
        if self.state != CLOSED:
            self._finish(ReasonCode.UNSPECIFIED_ERROR, publish_will=True)

    # ---- errors and closing ------------------------------------------------------

    def protocol_error(self, code: int) -> None:
        """Answer bad input with the right code for the client's version, then close.

        Before CONNACK an MQTT 5 client gets a CONNACK with the reason code, a 3.1.1
        client one only for the return codes 3.1.1 defines; after CONNACK an MQTT 5
        client gets a DISCONNECT [MQTT-4.13.1-1], a 3.1.1 client just the close.
        """
        if self.state in (NEW, AUTHENTICATING):
            level = self.decoder.protocol_level
            if level is None:
                # Unknown protocol: answer in 3.1.1 with return code 1 [MQTT-3.1.2-2].
                # Anything else before a CONNECT was read (a first packet that is not
                # CONNECT, garbage, an oversized header) closes without a CONNACK
                # [MQTT-3.1.0-1]: no version is known to answer in.
                if code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION:
                    self.link.write(encode(Connack(False, 0x84), 4))
            elif level >= 5:
                if code not in CONNACK_REASONS:
                    code = ReasonCode.UNSPECIFIED_ERROR
                self.link.write(encode(Connack(False, code), 5))
            elif connack_code_311(code) in (1, 2):
                self.link.write(encode(Connack(False, code), level))
            self._finish(code, publish_will=False)
            return
        self.disconnect(code)

    def refuse(self, code: int) -> None:
        """Refuse a well-formed CONNECT: a CONNACK with the reason in either version.

        MQTT 3.1.1 has six return codes; the rest map to the nearest one (5, not
        authorized, for most) so the client does not retry blindly.
        """
        if self.state not in (NEW, AUTHENTICATING):
            return
        level = self.level if self.level >= 5 else 4
        if code not in CONNACK_REASONS:
            code = ReasonCode.UNSPECIFIED_ERROR
        self.link.write(encode(Connack(False, code), level))
        self._finish(code, publish_will=False)

    def disconnect(self, code: int, publish_will: bool = True) -> None:
        """Close from our side, telling an MQTT 5 client why."""
        if self.state == CLOSED:
            return
        if self.v5 and self.state == CONNECTED:
            if code not in DISCONNECT_REASONS:
                code = ReasonCode.UNSPECIFIED_ERROR
            self.link.write(encode(Disconnect(code), 5))
        self._finish(code, publish_will)

    def abort(self, reason: int) -> None:
        """Drop the connection without a word (its peer is not reading or not talking)."""
        if self.state != CLOSED:
            self._finish(reason, publish_will=True, abort=True)

    def _finish(self, reason: int, publish_will: bool, abort: bool = False) -> None:
        was_connected = self.state == CONNECTED
        self.state = CLOSED
        if abort:
            self.link.abort()
        else:
            self.link.close()
        broker = self.broker
        broker.connections.discard(self)
        if was_connected:
            broker.detach(self, reason, publish_will)

    # ---- backpressure ------------------------------------------------------------

    def set_backlogged(self, backlogged: bool) -> None:
        """Called by the transport when its write buffer passes or falls below the mark.

        A backed-up socket holds up only its own deliveries: publishers are never paused
        for it (see `outbound.send_publish`), and what it queued meanwhile goes once it drains."""
        self.backlogged = backlogged
        if backlogged:
            self.backlog_since = self.broker.now()
        else:
            self.shedding = False
            outbound.pump(self)

    def overflowed(self, reason: str) -> None:
        """A message for this client did not fit its buffer or queue: count the drop and,
        with --slow-client disconnect, end the connection (0x97, quota exceeded)."""
        broker = self.broker
        broker.stats.drop(reason)
        if broker.config.slow_client == "disconnect" and not self.condemned:
            self.condemned = True
            # Not now: we are inside the publisher's fan-out, which this would change.
            broker.scheduler.call_later(0, self._cut_off)

    def _cut_off(self) -> None:
        if self.state == CLOSED:
            return
        link = self.link
        # With the kernel's send queue too, where a client that stopped reading leaves it.
        unsent = getattr(link, "unsent", link.buffered)()
        if unsent:
            # The DISCONNECT (and the FIN after it) would wait behind what the client is
            # not reading, for ever: reset the connection instead.
            self.abort(ReasonCode.QUOTA_EXCEEDED)
        else:
            self.disconnect(ReasonCode.QUOTA_EXCEEDED)

    # ---- CONNECT -----------------------------------------------------------------

    def _on_connect(self, packet: Connect) -> None:
        handle_connect(self, packet)

    # The handshake (handshake.py) changes a connection only through these.

    def set_protocol(self, level: int) -> None:
        """The CONNECT's protocol level: how everything from now on is encoded."""
        self.level = level
        self.v5 = level >= 5

    def identify(self, client_id: str) -> None:
        """The client id, as given or assigned, before authentication sees it."""
        self.client_id = client_id

    def await_authentication(self) -> None:
        """The authenticator answers later: stop reading, and hold what already arrived."""
        self.state = AUTHENTICATING
        self.link.pause_reading()

    def authentication_done(self) -> None:
        self.state = NEW

    def release_held(self) -> None:
        """Read again, and handle the packets held while the authenticator decided."""
        self.link.resume_reading()
        held = self.held
        self.held = None
        if held:
            self.handle_packets(held)

    def accept(
        self, principal: Principal, keep_alive: int, clean_start: bool, bridge: bool,
        will: Will | None,
    ) -> None:
        """An accepted CONNECT: who the client is and what it asked for."""
        self.principal = principal
        # Outgoing topics lose the mountpoint, as bytes of the encoded topic.
        self.strip = len(principal.mountpoint.encode("utf-8"))
        self.keep_alive = keep_alive
        self.clean_start = clean_start
        self.bridge = bridge
        self.will = will

    def limit_sending(
        self, quota: int | None, max_packet_size: int | None, topic_alias_maximum: int | None
    ) -> None:
        """What an MQTT 5 client said it can take (None, or no aliases: it did not say)."""
        if quota is not None:
            self.send_quota = quota
        if max_packet_size is not None:
            self.max_out = max_packet_size
        if topic_alias_maximum:
            self.alias_out_max = topic_alias_maximum

    def bind_session(self, session: Session) -> None:
        """Attached to its session by the broker: connected from now on."""
        self.session = session
        self.state = CONNECTED

    def info(self) -> ClientInfo:
        assert self.principal is not None
        return ClientInfo(
            client_id=self.client_id, principal=self.principal, protocol_level=self.level,
            listener=self.link.listener, remote_address=self.link.remote_address,
            clean_start=self.clean_start, keep_alive=self.keep_alive,
        )

    # ---- PUBLISH in --------------------------------------------------------------

    def _on_publish(self, packet: Publish) -> None:
        broker = self.broker
        topic = packet.topic
        props = packet.properties
        if props is not None and props.topic_alias is not None:
            alias = props.topic_alias
            if alias > broker.config.topic_alias_maximum:
                self.disconnect(ReasonCode.TOPIC_ALIAS_INVALID)  # [MQTT-3.3.2-9]
                return
            aliases = self.alias_in
            if aliases is None:
                aliases = self.alias_in = {}
            if topic:
                aliases[alias] = topic
            else:
                known = aliases.get(alias)
                if known is None:
                    self.disconnect(ReasonCode.PROTOCOL_ERROR)  # section 3.3.4
                    return
                topic = known
        qos = packet.qos
        config = broker.config
        if qos > config.max_qos:
            self.disconnect(ReasonCode.QOS_NOT_SUPPORTED)  # [MQTT-3.2.2-11]
            return
        if packet.retain and not config.retain_available:
            self.disconnect(ReasonCode.RETAIN_NOT_SUPPORTED)  # [MQTT-3.2.2-14]
            return
        length = len(topic)
        if length > config.max_topic_length or (
            # A topic with fewer characters than the level limit cannot exceed it.
            length >= config.max_topic_levels and topic.count("/") >= config.max_topic_levels
        ):
            self.disconnect(ReasonCode.TOPIC_NAME_INVALID)
            return
        packet_id = packet.packet_id or 0
        limit = config.message_size_limit
        if limit and len(packet.payload) > limit:
            # Mosquitto's message_size_limit: dropped, the connection stays, and the answer
            # is Mosquitto's 0x95 (packet too large). MQTT does not list 0x95 for PUBACK and
            # PUBREC [MQTT-3.4.2-1], but every client reads a code from 0x80 up as a refusal,
            # and this one names the cause; only mosquitto.conf sets this limit.
            broker.stats.drop(DROP_TOO_LARGE)
            if qos:
                reply = Puback if qos == 1 else Pubrec
                self.link.write(self._reply(reply(packet_id, ReasonCode.PACKET_TOO_LARGE)))
            return
        session = self.session
        assert session is not None
        if qos == 2:
            received = session.qos2_in
            if received is None:
                received = session.qos2_in = set()
            elif packet_id in received:
                # A resend of a message we already own: acknowledge, never route it twice.
                self.link.write(encode_ack(0x50, packet_id))
                return
            # Only MQTT 5 clients were told a receive maximum; a 3.1.x client is bounded by
            # its 65,535 packet ids, as in Mosquitto.
            if self.level >= 5 and len(received) >= config.max_inflight:
                self.disconnect(ReasonCode.RECEIVE_MAXIMUM_EXCEEDED)  # [MQTT-3.3.4-9]
                return
        principal = self.principal
        assert principal is not None
        if not broker.allow_all or topic[:1] == "$":  # "$SYS" is refused even with AllowAll
            decision = Decision.DENY if is_share_name(topic) else authorize_publish(
                broker.authorizer, principal, topic, qos, packet.retain
            )
            if decision is not Decision.ALLOW:
                broker.stats.denied += 1
                if qos == 1:
                    self.link.write(self._reply(Puback(packet_id, ReasonCode.NOT_AUTHORIZED)))
                elif qos == 2:
                    self.link.write(self._reply(Pubrec(packet_id, ReasonCode.NOT_AUTHORIZED)))
                return
            if broker.hooks.control and topic.startswith(CONTROL_TOPICS):
                self._on_control(topic, packet.payload, qos, packet_id)
                return
        if self.strip:
            topic = principal.mountpoint + topic
        if props is None:
            message = Message(topic, packet.payload, qos, packet.retain, None, None, session)
        else:
            message = message_from_properties(
                topic, packet.payload, qos, packet.retain, props, broker.now(), session
            )
        broker.stats.messages_received += 1
        journal = broker.journal
        mark = journal.seq if journal is not None else 0
        matched = broker.publish(message)
        if qos == 1:
            if journal is not None and journal.seq != mark:
                self.hold_output()  # acknowledged once on disk for every durable session
            if self.v5 and not matched:
                self.link.write(self._reply(Puback(packet_id, ReasonCode.NO_MATCHING_SUBSCRIBERS)))
            else:
                self.link.write(encode_ack(0x40, packet_id))
        elif qos == 2:
            assert session.qos2_in is not None
            session.qos2_in.add(packet_id)
            if journal is not None:
                if session.durable:
                    durability.qos2_received(journal, session, packet_id, True)
                if journal.seq != mark:
                    self.hold_output()
            # PUBREC says 0 even with no subscriber, as Mosquitto does (it routes QoS 2 only
            # at PUBREL, so MQTT 5 clients expect no 0x10 here; 0x10 is optional anyway).
            self.link.write(encode_ack(0x50, packet_id))

    def _on_control(self, topic: str, payload: bytes, qos: int, packet_id: int) -> None:
        """A request to a broker feature: handed to its hook, acknowledged, not routed."""
        hook = self.broker.hooks.control.get(topic)
        if hook is not None:
            assert self.principal is not None
            try:
                hook(self.principal, payload)
            except Exception:
                logger.exception("control hook for %r failed", topic)
        if qos == 1:
            self.link.write(encode_ack(0x40, packet_id))
        elif qos == 2:
            session = self.session
            assert session is not None and session.qos2_in is not None
            session.qos2_in.add(packet_id)  # PUBREL completes it as for any QoS 2 message
            self.link.write(encode_ack(0x50, packet_id))

    def _reply(self, packet: Packet) -> bytes:
        return encode(packet, self.level)

    def _on_pubrel(self, packet: Pubrel) -> None:
        session = self.session
        assert session is not None
        received = session.qos2_in
        if received is not None and packet.packet_id in received:
            received.discard(packet.packet_id)
            journal = self.broker.journal
            if journal is not None and session.durable:
                durability.qos2_received(journal, session, packet.packet_id, False)
                self.hold_output()  # the release is on disk before PUBCOMP
        # An unknown id gets a plain PUBCOMP too, as from Mosquitto: MQTT 5 offers 0x92, but
        # after a lost PUBCOMP the client's resent PUBREL is ordinary recovery.
        self.link.write(encode_ack(0x70, packet.packet_id))

    # ---- the rest ----------------------------------------------------------------

    def _on_subscribe(self, packet: Subscribe) -> None:
        handle_subscribe(self, packet)

    def _on_unsubscribe(self, packet: Unsubscribe) -> None:
        handle_unsubscribe(self, packet)

    def _on_pingreq(self, packet: Packet) -> None:
        self.link.write(_PINGRESP)

    def _on_disconnect(self, packet: Disconnect) -> None:
        session = self.session
        assert session is not None
        props = packet.properties
        if props is not None and props.session_expiry_interval is not None:
            if session.expiry_interval == 0 and props.session_expiry_interval != 0:
                self.disconnect(ReasonCode.PROTOCOL_ERROR)  # [MQTT-3.14.2-2]
                return
            session.expiry_interval = props.session_expiry_interval
        # A normal DISCONNECT discards the will [MQTT-3.1.2-10]; 0x04 asks for it.
        publish_will = self.v5 and packet.reason_code == ReasonCode.DISCONNECT_WITH_WILL_MESSAGE
        self._finish(packet.reason_code, publish_will)

    def _on_auth(self, packet: Packet) -> None:
        self.disconnect(ReasonCode.PROTOCOL_ERROR)

    def _on_unexpected(self, packet: Packet) -> None:
        self.protocol_error(ReasonCode.PROTOCOL_ERROR)


_HANDLERS: list[Callable[[Connection, Any], None]] = [Connection._on_unexpected] * 16
_HANDLERS[1] = Connection._on_connect
_HANDLERS[3] = Connection._on_publish
_HANDLERS[4] = outbound.on_puback
_HANDLERS[5] = outbound.on_pubrec
_HANDLERS[6] = Connection._on_pubrel
_HANDLERS[7] = outbound.on_pubcomp
_HANDLERS[8] = Connection._on_subscribe
_HANDLERS[10] = Connection._on_unsubscribe
_HANDLERS[12] = Connection._on_pingreq
_HANDLERS[14] = Connection._on_disconnect
_HANDLERS[15] = Connection._on_auth
