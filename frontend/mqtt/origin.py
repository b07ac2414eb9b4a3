"""Exact Origin check for WebSocket handshakes, before anything else runs.

A browser sends the page's origin with every WebSocket handshake and lets any page open a
socket to any site, cookies included. So the dashboard's endpoint accepts only the origins
the platform is configured for (ROOST_PUBLIC_URL and ROOST_CSRF_TRUSTED_ORIGINS), compared
exactly (scheme, host and port), and refuses a missing, "null" or foreign Origin by closing
before accepting: the ASGI server answers the handshake with 403 and no MQTT is ever read.
Entries with wildcards ("https://*.example.com", which Django's CSRF check allows) match
nothing here: a WebSocket origin has to be listed as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from . import metrics

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str | None:
    """`scheme://host[:port]` in lower case without a default port; None if not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host or "*" in host:
        return None
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal, bracketed again after urlsplit took them off
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def configured_origins() -> frozenset[str]:
    """The origins allowed to open the dashboard's WebSocket, from the settings."""
    candidates: Iterable[str] = [settings.ROOST_PUBLIC_URL, *settings.CSRF_TRUSTED_ORIGINS]
    return frozenset(o for o in (normalize_origin(c) for c in candidates) if o is not None)


class ExactOriginValidator:
    """ASGI middleware: WebSocket handshakes from other origins are refused with 403."""

    def __init__(self, application: Any, origins: Iterable[str] | None = None) -> None:
        self.application = application
        self.origins = frozenset(origins) if origins is not None else configured_origins()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            return await self.application(scope, receive, send)
        origin = None
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                origin = normalize_origin(value.decode("latin-1"))
                break
        if origin is None or origin not in self.origins:
            metrics.refused("missing origin" if origin is None else "foreign origin")
            return await refuse_handshake(receive, send)
        return await self.application(scope, receive, send)


async def refuse_handshake(receive: Any, send: Any) -> None:
    """Close before accepting (HTTP 403 from the ASGI server), once the connect event came."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


async def refuse_unknown_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI app for WebSocket paths nobody serves."""
    metrics.refused("unknown path")
    await refuse_handshake(receive, send)
