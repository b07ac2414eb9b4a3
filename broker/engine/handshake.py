"""CONNECT handling: authentication, session attach and the CONNACK."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from broker.engine.flapping import detector_for
from broker.engine.interfaces import (
    CONTROL_TOPICS,
    ConnectionFacts,
    Decision,
    Principal,
    authorize_publish,
)
from broker.engine.outbound import resume
from broker.engine.session import NEVER_EXPIRES
from broker.engine.states import CLOSED
from broker.mqtt.encoder import encode
from broker.mqtt.packets import Connack, Connect
from broker.mqtt.properties import Properties
from broker.mqtt.reason_codes import ReasonCode
from broker.mqtt.topics import is_share_name

if TYPE_CHECKING:
    from broker.engine.connection import Connection

logger = logging.getLogger(__name__)


def handle_connect(conn: Connection, packet: Connect) -> None:
    """Authenticate a CONNECT (possibly asynchronously), then accept or refuse it."""
    level = packet.protocol_level
    conn.set_protocol(level)
    v5 = conn.v5
    props = packet.properties
    if v5 and props is not None and props.authentication_method is not None:
        # Enhanced authentication (AUTH exchanges) is not offered.
        conn.refuse(ReasonCode.BAD_AUTHENTICATION_METHOD)
        return
    broker = conn.broker
    cap = broker.config.max_keepalive
    if not v5 and cap and (packet.keep_alive == 0 or packet.keep_alive > cap):
        # A 3.1.1 client cannot be told a server keep alive; like Mosquitto, refuse it.
        conn.refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID)
        return
    client_id = packet.client_id
    assigned = None
    if not client_id:
        if not broker.config.allow_zero_length_clientid:
            # As Mosquitto: 3.1.1 return code 2, MQTT 5 unspecified error.
            conn.refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID if not v5 else ReasonCode.UNSPECIFIED_ERROR)
            return
        client_id = broker.new_client_id()
        if v5:
            assigned = client_id  # [MQTT-3.2.2-16]
    conn.identify(client_id)
    link = conn.link
    facts = ConnectionFacts(
        client_id=client_id, username=packet.username, password=packet.password,
        protocol_level=level, peer_certificates=link.peer_certificates,
        listener=link.listener, remote_address=link.remote_address,
    )
    result = broker.authenticator.authenticate(facts)
    if inspect.isawaitable(result):
        conn.await_authentication()
        task = asyncio.ensure_future(_resolve(result))

        def done(t: asyncio.Future[Principal | int]) -> None:
            if t.cancelled():
                conn.abort(ReasonCode.SERVER_SHUTTING_DOWN)
                return
            _authenticated(conn, packet, assigned, t.result(), resumed=True)

        task.add_done_callback(done)
        return
    _authenticated(conn, packet, assigned, result, resumed=False)


def _authenticated(
    conn: Connection, packet: Connect, assigned: str | None, result: Principal | int, resumed: bool
) -> None:
    if conn.state == CLOSED:
        return
    conn.authentication_done()
    if not isinstance(result, Principal):
        conn.refuse(int(result) if result else ReasonCode.NOT_AUTHORIZED)
        return
    flaps = detector_for(conn.broker)
    if flaps.enabled and not flaps.admit((result.mountpoint, conn.client_id), conn.broker.now()):
        conn.refuse(ReasonCode.CONNECTION_RATE_EXCEEDED)  # 3.1.1: 5, not authorized
        return
    _accept(conn, packet, assigned, result)
    if resumed:
        conn.release_held()


def _accept(conn: Connection, packet: Connect, assigned: str | None, principal: Principal) -> None:
    broker = conn.broker
    config = broker.config
    v5 = conn.v5
    will = packet.will
    if will is not None:
        if config.message_size_limit and len(will.payload) > config.message_size_limit:
            conn.refuse(ReasonCode.PACKET_TOO_LARGE)  # 3.1.1: return code 5
            return
        if will.qos > config.max_qos:
            conn.refuse(ReasonCode.QOS_NOT_SUPPORTED)  # [MQTT-3.2.2-12]
            return
        if will.retain and not config.retain_available:
            conn.refuse(ReasonCode.RETAIN_NOT_SUPPORTED)  # [MQTT-3.2.2-13]
            return
        # A will the client could not publish itself is refused now, not silently dropped
        # when it is due (it is checked again then: rights may change meanwhile).
        if (not broker.allow_all or will.topic[:1] == "$") and (
                is_share_name(will.topic)
                # A will cannot be a request to a broker feature (Mosquitto refuses it too).
                or (broker.hooks.control and will.topic.startswith(CONTROL_TOPICS))
                or authorize_publish(
                    broker.authorizer, principal, will.topic, will.qos, will.retain
                ) is not Decision.ALLOW):
            broker.stats.denied += 1
            conn.refuse(ReasonCode.NOT_AUTHORIZED)  # 3.1.1: return code 5
            return
    keep_alive = packet.keep_alive
    server_keep_alive = None
    cap = config.max_keepalive
    if v5 and cap and (keep_alive == 0 or keep_alive > cap):
        keep_alive = server_keep_alive = cap  # [MQTT-3.2.2-21]
    conn.accept(principal, keep_alive, packet.clean_start, packet.bridge, will)
    props = packet.properties
    request_info = False
    if v5:
        expiry = 0
        if props is not None:
            if props.session_expiry_interval is not None:
                expiry = props.session_expiry_interval
            receive_maximum = props.receive_maximum
            conn.limit_sending(
                None if receive_maximum is None else min(receive_maximum, config.max_inflight),
                props.maximum_packet_size, props.topic_alias_maximum,
            )
            # Request problem information needs nothing: Roost sends no reason strings or
            # user properties on packets where the client could turn them off.
            request_info = props.request_response_information == 1
    else:
        expiry = 0 if packet.clean_start else NEVER_EXPIRES
    capped = None
    if config.max_session_expiry and expiry > config.max_session_expiry:
        expiry = capped = config.max_session_expiry
    session, present = broker.attach(conn, conn.client_id, principal, packet.clean_start,
                                     expiry)
    conn.bind_session(session)
    ack_props = None
    if v5:
        ack_props = Properties(
            receive_maximum=config.max_inflight,
            maximum_qos=config.max_qos if config.max_qos < 2 else None,
            retain_available=None if config.retain_available else 0,
            maximum_packet_size=config.max_packet_size or None,
            topic_alias_maximum=config.topic_alias_maximum or None,
            assigned_client_identifier=assigned,
            server_keep_alive=server_keep_alive,
            # The client must be told when its session will not last as long as it asked.
            session_expiry_interval=capped,
        )
        if config.advertise_defaults:
            ack_props.wildcard_subscription_available = 1
            ack_props.subscription_identifier_available = 1
            ack_props.shared_subscription_available = 1
        if request_info and config.response_information:
            ack_props.response_information = config.response_information + conn.client_id
    # Session present is 0 whenever the session is new [MQTT-3.2.2-2] [MQTT-3.2.2-3].
    conn.link.write(encode(Connack(present, 0, ack_props), conn.level))
    broker.connected(conn)
    resume(conn)


async def _resolve(result: Awaitable[Principal | int]) -> Principal | int:
    try:
        return await result
    except Exception:
        # An authenticator that fails must not leave the client hanging or let it in.
        logger.exception("authenticator failed")
        return ReasonCode.SERVER_UNAVAILABLE
