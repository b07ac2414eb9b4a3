"""The dashboard's MQTT endpoint, `/mqtt`: a Channels consumer relaying to the broker.

A browser (MQTT.js, or anything speaking MQTT over WebSocket with the `mqtt` subprotocol)
opens a WebSocket on the web port with its session cookie; the Origin has already been
checked (origin.py). The consumer reads the first packet, which must be CONNECT, decodes
it with the broker's codec, and decides from the Django session who is connecting: the
CONNECT user name names the tenant, the password is ignored and never forwarded. Refusals
are a CONNACK with the reason (MQTT 5) or the nearest 3.1.1 return code, then the close.

Admitted, it opens one TCP connection to the broker's loopback bridge listener, sends the
same CONNECT with a signed principal (user, tenant, role) in place of the credentials and
a client id of the user's own namespace, and from then on relays bytes (relay.py). Every
RECHECK_INTERVAL seconds it checks that the session still holds (access.py), renews its
connection slot and reports its PUBLISH count (limits.py); when something no longer holds
it tells an MQTT 5 browser why with a DISCONNECT and closes both sides.

No channel layer: nothing else ever messages this consumer. What it needs is its own two
connections, the database and the cache, so any web process can serve any browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from django.conf import settings

from broker.integration.signed_principals import BridgePrincipal, sign_principal
from broker.mqtt import (
    Connack,
    Connect,
    Properties,
    ProtocolError,
    ReasonCode,
    StreamDecoder,
    connack_code_311,
    encode,
)
from broker.mqtt.reason_codes import CONNACK_REASONS

from . import metrics
from .access import Grant, Refusal, grant_for, still_valid
from .flow import EXTENSION, TwistedFlow
from .limits import Limits, claim_slot, release_slot, renew_slot, report_publishes
from .relay import CHUNK, RATE_TOO_HIGH, Relay
from .walker import first_packet_end

log = logging.getLogger("roost.web.mqtt")

SUBPROTOCOL = "mqtt"
CONNECT_TIMEOUT = 10.0
RECHECK_INTERVAL = 2.0
BROKER_CONNECT_TIMEOUT = 5.0
CONNECTION_LIMIT = Refusal(ReasonCode.QUOTA_EXCEEDED, "connection limit")
BROKER_UNAVAILABLE = Refusal(ReasonCode.SERVER_UNAVAILABLE, "broker unavailable")
# The WebSocket close code of every ending: autobahn (daphne) lets an application send 1000 or
# 3000-4999 only, and the reason, where MQTT can carry one, is in the CONNACK or DISCONNECT.
NORMAL = 1000


def _in_thread(func: Any) -> Any:
    # Not thread-sensitive: these checks need no particular thread and must not queue behind
    # each other (or behind anything else) on the one thread-sensitive executor.
    return database_sync_to_async(func, thread_sensitive=False)


def forwarded_client_id(user_id: int, client_id: str) -> str:
    """The client id the broker sees: in the user's own namespace.

    Sessions are keyed by client id within a tenant, so a browser naming a device (device
    names never contain "/") or another user's client would otherwise take over that
    session. Empty stays empty: the broker assigns one (and tells an MQTT 5 client).
    """
    return f"portal/{user_id}/{client_id}" if client_id else ""


def admit(user: Any, session_key: str | None, tenant: str | None, limits: Limits,
          owner: str) -> tuple[Grant | Refusal, str | None]:
    """The grant and a connection slot, or why not (run in a thread)."""
    grant = grant_for(user, session_key, tenant)
    if isinstance(grant, Refusal):
        return grant, None
    slot = claim_slot(grant.user_id, limits.max_connections, owner)
    if slot is None:
        return CONNECTION_LIMIT, None
    return grant, slot


def recheck(grant: Grant, slot: str | None, limits: Limits, owner: str, publishes: int,
            now: float) -> tuple[Refusal | None, str | None]:
    """Whether the connection may go on; renews its slot (run in a thread)."""
    refusal = still_valid(grant)
    if refusal is not None:
        return refusal, slot
    slot = renew_slot(slot, grant.user_id, limits.max_connections, owner) if slot else None
    if slot is None:
        return CONNECTION_LIMIT, None
    if not report_publishes(grant.user_id, publishes, limits.max_rate, now):
        return RATE_TOO_HIGH, slot
    return None, slot


class MqttConsumer(AsyncConsumer):  # type: ignore[misc]  # channels ships no type hints
    """One browser's MQTT connection, relayed to the broker's bridge listener."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = Limits.from_settings()
        self.owner = uuid.uuid4().hex  # this connection, in the shared slot table
        self.level = 4  # MQTT version of the refusals until a CONNECT names one
        self.pending = bytearray()  # the CONNECT, possibly arriving in pieces
        self.flow: TwistedFlow | None = None
        self.grant: Grant | None = None
        self.slot: str | None = None
        self.relay: Relay | None = None
        self.pump_task: asyncio.Task[None] | None = None
        self.watch_task: asyncio.Task[None] | None = None
        self.relaying = asyncio.Event()
        self.ended = False
        self.cleaned = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # AsyncConsumer.__call__ minus the channel layer (see the module docstring) and minus
        # a task per incoming frame: frames are handled one after the other, which is what
        # holds back a browser while the broker is not taking its bytes.
        self.scope = scope
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            await self._cleanup()

    # WebSocket events ------------------------------------------------------------------------

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        if SUBPROTOCOL not in self.scope.get("subprotocols", ()):
            metrics.refused("no mqtt subprotocol")
            await self.base_send({"type": "websocket.close"})  # before accept: HTTP 403
            raise StopConsumer
        await self.base_send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        factory = (self.scope.get("extensions") or {}).get(EXTENSION)
        if factory is not None:
            flow = factory()
            self.flow = flow if flow.attach() else None
        self.watch_task = asyncio.create_task(self._watch())

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if self.ended:
            return
        data = message.get("bytes")
        if data is None:
            # MQTT travels in binary frames only [MQTT-6.0.0-1].
            if self.relay is not None:
                await self._end(None, "text frame")
            else:
                await self._close_before_session("text frame")
            return
        if not data:
            return
        relay = self.relay
        if relay is not None:
            refusal = await relay.to_broker(data, asyncio.get_running_loop().time())
            if refusal is not None:
                await self._end(refusal, refusal.reason)
            return
        await self._take_connect(data)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if not self.ended and self.relay is not None:
            metrics.ended("client closed")
        self.ended = True
        raise StopConsumer

    # CONNECT ---------------------------------------------------------------------------------

    async def _take_connect(self, data: bytes) -> None:
        pending = self.pending
        pending += data
        decoder = StreamDecoder(max_packet_size=self.limits.max_packet)
        try:
            if pending[0] & 0xF0 != 0x10:
                raise ProtocolError(ReasonCode.PROTOCOL_ERROR, "first packet is not CONNECT")
            end = first_packet_end(pending, self.limits.max_packet)
            if end is None:
                return
            (connect,) = decoder.feed(bytes(pending[:end]))
        except ProtocolError as error:
            await self._refuse_malformed(error, decoder.protocol_level)
            return
        assert isinstance(connect, Connect)
        rest = bytes(pending[end:])
        self.pending = bytearray()
        self.level = connect.protocol_level
        flow = self.flow
        if flow is not None:
            flow.pause_reading()  # nothing more from the browser until the broker has it
        try:
            await self._open(connect, rest)
        finally:
            if flow is not None:
                flow.resume_reading()

    async def _open(self, connect: Connect, rest: bytes) -> None:
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None) if session is not None else None
        grant, slot = await _in_thread(admit)(self.scope.get("user"), session_key,
                                              connect.username, self.limits, self.owner)
        self.slot = slot
        if self.ended:  # the CONNECT deadline passed meanwhile
            return
        if isinstance(grant, Refusal):
            await self._refuse(grant)
            return
        self.grant = grant
        token = sign_principal(BridgePrincipal(grant.tenant, grant.user_id, grant.username, grant.role))
        forwarded = Connect(
            connect.protocol_level, connect.clean_start, connect.keep_alive,
            forwarded_client_id(grant.user_id, connect.client_id), grant.username, token.encode(),
            connect.will, connect.properties,
        )
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", settings.ROOST_BROKER_BRIDGE_PORT, limit=CHUNK),
                BROKER_CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as error:
            log.warning("cannot reach the broker's bridge listener on 127.0.0.1:%s: %s",
                        settings.ROOST_BROKER_BRIDGE_PORT, error)
            await self._refuse(BROKER_UNAVAILABLE)
            return
        loop = asyncio.get_running_loop()
        relay = Relay(reader, writer, self.base_send, self.flow, max_packet=self.limits.max_packet,
                      rate=self.limits.max_rate, now=loop.time())
        if self.ended:  # the CONNECT deadline passed meanwhile
            relay.close()
            return
        self.relay = relay
        metrics.SESSIONS.inc()
        first = encode(forwarded, connect.protocol_level)
        writer.write(first)
        metrics.TO_BROKER.inc(len(first))
        self.pump_task = asyncio.create_task(self._pump(relay))
        self.relaying.set()
        if rest:
            refusal = await relay.to_broker(rest, loop.time())
            if refusal is not None:
                await self._end(refusal, refusal.reason)

    # Background tasks --------------------------------------------------------------------------

    async def _pump(self, relay: Relay) -> None:
        await relay.pump()
        await self._end(None, "broker closed")

    async def _watch(self) -> None:
        try:
            await asyncio.wait_for(self.relaying.wait(), CONNECT_TIMEOUT)
        except TimeoutError:
            if not self.ended:
                await self._close_before_session("connect timeout")
            return
        check = _in_thread(recheck)
        while not self.ended:
            await asyncio.sleep(RECHECK_INTERVAL)
            relay, grant = self.relay, self.grant
            if relay is None or grant is None or self.ended:
                return
            publishes, relay.unreported = relay.unreported, 0
            try:
                refusal, self.slot = await check(grant, self.slot, self.limits, self.owner, publishes, time.time())
            except Exception:
                # A database or cache hiccup is no reason to drop a browser; the next round decides.
                log.warning("could not re-check a browser session", exc_info=True)
                continue
            if refusal is not None:
                await self._end(refusal, refusal.reason)

    # Endings -----------------------------------------------------------------------------------

    async def _refuse(self, refusal: Refusal) -> None:
        """A CONNACK with the reason, in the client's MQTT version, then the close."""
        metrics.refused(refusal.reason)
        self.ended = True
        if self.level >= 5:
            code = refusal.code if refusal.code in CONNACK_REASONS else ReasonCode.UNSPECIFIED_ERROR
            packet = encode(Connack(False, code, Properties(reason_string=refusal.reason)), 5)
        else:
            packet = encode(Connack(False, refusal.code), 4)  # mapped to a 3.1.1 return code
        await self.base_send({"type": "websocket.send", "bytes": packet})
        await self.base_send({"type": "websocket.close", "code": NORMAL})

    async def _refuse_malformed(self, error: ProtocolError, level: int | None) -> None:
        """Answer a bad first packet as the broker does (broker/engine/connection.py)."""
        metrics.refused("packet too large" if error.reason_code == ReasonCode.PACKET_TOO_LARGE
                        else "malformed connect")
        self.ended = True
        code = error.reason_code
        packet = None
        if level is None:
            if code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION:
                packet = encode(Connack(False, code), 4)  # 3.1.1 return code 1 [MQTT-3.1.2-2]
        elif level >= 5:
            packet = encode(Connack(False, code if code in CONNACK_REASONS else ReasonCode.UNSPECIFIED_ERROR), 5)
        elif connack_code_311(code) in (1, 2):
            packet = encode(Connack(False, code), level)
        if packet is not None:
            await self.base_send({"type": "websocket.send", "bytes": packet})
        await self.base_send({"type": "websocket.close", "code": NORMAL})

    async def _close_before_session(self, reason: str) -> None:
        metrics.refused(reason)
        self.ended = True
        await self.base_send({"type": "websocket.close", "code": NORMAL})

    async def _end(self, refusal: Refusal | None, reason: str) -> None:
        """End a relayed session: tell an MQTT 5 browser why, when possible; close both sides."""
        if self.ended:
            return
        self.ended = True
        metrics.ended(reason)
        relay = self.relay
        if relay is not None:
            async with relay.send_lock:  # no chunk is half-way to the browser now
                relay.closed = True
                farewell = relay.farewell(refusal, self.level) if refusal is not None else None
                if farewell is not None:
                    await self.base_send({"type": "websocket.send", "bytes": farewell})
            relay.close()
            pump = self.pump_task
            if pump is not None and pump is not asyncio.current_task():
                pump.cancel()
        await self.base_send({"type": "websocket.close", "code": NORMAL})

    async def _cleanup(self) -> None:
        if self.cleaned:
            return
        self.cleaned = True
        current = asyncio.current_task()
        for task in (self.watch_task, self.pump_task):
            if task is not None and task is not current:
                task.cancel()
        if self.relay is not None:
            self.relay.close()
            metrics.SESSIONS.dec()
        if self.flow is not None:
            self.flow.detach()
        if self.slot is not None:
            with contextlib.suppress(Exception):  # the lease runs out by itself anyway
                await _in_thread(release_slot)(self.slot, self.owner)
            self.slot = None
