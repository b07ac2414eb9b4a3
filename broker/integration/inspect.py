"""A loopback view into the running broker: one tenant's sessions and subscriptions.

`GET /sessions?tenant=SLUG` on the broker's metrics port (the same HTTP server, see
`metrics.py`) answers what only the broker knows: who is connected right now and what each
session subscribes to. A subscription made a second ago exists nowhere else (sessions reach
the database only when the broker saves them), and the web side needs exactly those to tell
what a draft ACL rule would drop (`POST acl/impact`).

Loopback alone does not make a caller trustworthy: any local process can connect. Every
request carries, in the `X-Roost-Inspect` header, a signature made with the platform's secret
key (Django's signing, as `signed_principals.py` signs principals) for that one tenant, valid for
`MAX_AGE` seconds; anything else is refused with 403.

The HTTP server runs in threads of its own; broker state belongs to the event loop, so each
request hands the reading to the loop and waits for its result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from django.core import signing

from acl.compiler import DecisionCache
from acl.rules import DEVICE, SERVICE, USER
from acl.rules import Principal as AclPrincipal
from broker.engine.interfaces import Principal, format_address

from .identities import mountpoint_for

if TYPE_CHECKING:
    from .traffic import TrafficMeter

if TYPE_CHECKING:
    from broker.engine.broker import Broker
    from broker.engine.session import Session

log = logging.getLogger("roost.broker.inspect")

SALT = "roost.broker.inspect.v1"
HEADER = "X-Roost-Inspect"
MAX_AGE = 30
"""Seconds a signature stays good: enough for a clock step between the two processes, too
short for a copied header to be worth much."""
READ_TIMEOUT = 5.0
MAX_TENANT_CHARS = 200

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def sign_request(tenant: str) -> str:
    """The header value that lets the holder read `tenant`'s sessions for MAX_AGE seconds."""
    return signing.dumps({"t": tenant, "p": "sessions"}, salt=SALT, compress=False)


def verify_request(token: str, tenant: str, max_age: int = MAX_AGE) -> bool:
    try:
        data = signing.loads(token, salt=SALT, max_age=max_age)
    except signing.BadSignature:  # includes SignatureExpired
        return False
    return isinstance(data, dict) and data.get("p") == "sessions" and data.get("t") == tenant


def _acl_principal(principal: Principal) -> AclPrincipal | None:
    """Who the broker judges this client as: the principal its compiled rules were built for."""
    attributes = principal.attributes
    fixed = attributes.get("acl_principal")
    if isinstance(fixed, AclPrincipal):
        return fixed
    cache = attributes.get("acl")
    if isinstance(cache, DecisionCache):
        found = cache.matcher.principal
        return found if isinstance(found, AclPrincipal) else None
    return None


def _who(principal: Principal) -> dict[str, str | None]:
    acl = _acl_principal(principal)
    attributes = principal.attributes
    who: dict[str, str | None] = {"kind": "unknown", "device": None, "role": None, "service": None}
    if acl is not None and acl.kind == DEVICE:
        who.update(kind="device", device=acl.device)
    elif acl is not None and acl.kind == USER:
        who.update(kind="role", role=acl.role)
    elif acl is not None and acl.kind == SERVICE:
        who.update(kind="service", service=acl.service)
    # A session restored from storage has no rules bound until its first use; its plain
    # attributes still say what it is.
    elif "device_id" in attributes:
        who.update(kind="device", device=principal.name)
    elif isinstance(attributes.get("service"), str):
        who.update(kind="service", service=attributes["service"])
    return who


def session_record(session: Session) -> dict[str, Any]:
    """One session as JSON: who, whether and from where connected, and its subscriptions."""
    principal = session.principal
    attributes = principal.attributes
    conn = session.conn
    info = conn.info() if conn is not None else None
    serial = attributes.get("serial")
    username = attributes.get("username")
    address = format_address(info.remote_address, "") if info is not None else ""
    return {
        "client_id": session.client_id,
        **_who(principal),
        "user": username if isinstance(username, str) else None,
        "connected": info is not None,
        "remote_address": address or None,
        "protocol_version": info.protocol_level if info is not None else session.protocol_level,
        "listener": info.listener if info is not None else None,
        "certificate_serial": serial if isinstance(serial, str) else None,
        "subscriptions": [{"filter": topic_filter, "qos": entry.options.qos}
                          for topic_filter, entry in sorted(session.subscriptions.items())],
    }


class SessionInspector:
    """The WSGI app behind `/sessions`."""

    def __init__(self, broker: Broker, loop: asyncio.AbstractEventLoop, timeout: float = READ_TIMEOUT,
                 traffic: TrafficMeter | None = None) -> None:
        self.broker = broker
        self.loop = loop
        self.timeout = timeout
        self.traffic = traffic

    def sessions(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's sessions, connected or kept for a client that will return (loop thread)."""
        mountpoint = mountpoint_for(tenant)
        found = [s for s in self.broker.sessions.values() if s.mountpoint == mountpoint]
        return [session_record(s) for s in sorted(found, key=lambda s: s.client_id)]

    async def _sessions(self, tenant: str) -> list[dict[str, Any]]:
        return self.sessions(tenant)

    def read(self, tenant: str) -> list[dict[str, Any]]:
        """`sessions`, called from any thread: the loop does the reading."""
        future = asyncio.run_coroutine_threadsafe(self._sessions(tenant), self.loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return _json(start_response, "405 Method Not Allowed", {"error": "GET only"}, [("Allow", "GET")])
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        tenants = query.get("tenant", [])
        if len(tenants) != 1 or not tenants[0] or len(tenants[0]) > MAX_TENANT_CHARS:
            return _json(start_response, "400 Bad Request", {"error": "give one ?tenant=SLUG"})
        tenant = tenants[0]
        token = environ.get("HTTP_X_ROOST_INSPECT", "")
        if not isinstance(token, str) or not verify_request(token, tenant):
            log.warning("refused an unsigned or badly signed request for %r from %s", tenant,
                        environ.get("REMOTE_ADDR", "?"))
            return _json(start_response, "403 Forbidden", {"error": f"a valid {HEADER} signature is required"})
        try:
            sessions = self.read(tenant)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:  # a busy or stopping loop
            log.warning("could not read the sessions of %r: %r", tenant, exc)
            return _json(start_response, "503 Service Unavailable", {"error": "the broker did not answer in time"})
        body: dict[str, Any] = {"tenant": tenant, "sessions": sessions}
        if self.traffic is not None:
            # Two plain dict reads of numbers the loop replaces whole: safe from this thread.
            body["traffic"] = self.traffic.of(mountpoint_for(tenant))
        return _json(start_response, "200 OK", body)


def _json(start_response: StartResponse, status: str, body: dict[str, Any],
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(body, separators=(",", ":")).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store"), *(headers or [])])
    return [data]
