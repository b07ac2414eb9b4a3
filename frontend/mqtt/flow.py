"""Flow control towards the browser's socket, which plain ASGI does not expose.

Under daphne an ASGI `send` of `websocket.send` writes into Twisted's transport buffer and
returns at once, however slowly the browser reads, and every frame the browser sends is
queued for the application without limit. A relay that just forwarded would therefore
hold everything a slow browser has not taken yet. Twisted has the missing piece as public
API: a streaming producer registered on a transport is paused when the transport's send
buffer passes its limit (64 KiB) and resumed when it drains, and the transport itself is a
producer whose reading can be paused.

`ServerFlowMiddleware`, the outermost layer of the WebSocket stack, recognizes daphne's
`send` (a partial of its server's `handle_reply` bound to the connection's protocol) and
puts a `TwistedFlow` factory into the scope under `scope["extensions"]["roost.flow"]`.
Under another ASGI server (uvicorn, hypercorn: their `send` waits for the socket already)
the extension is absent and the relay relies on `send` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Any

EXTENSION = "roost.flow"


class TwistedFlow:
    """Pause/resume both ways on a daphne WebSocket's Twisted transport.

    Registered as the transport's streaming producer: Twisted calls `pauseProducing` when
    the browser is not taking what was written and `resumeProducing` when it has; the relay
    waits on `writable()` between writes. `pause_reading`/`resume_reading` stop and restart
    reading frames from the browser while the broker is not taking them.
    """

    __slots__ = ("_transport", "_writable", "_attached", "reading_paused")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._writable = asyncio.Event()
        self._writable.set()
        self._attached = False
        self.reading_paused = False

    def attach(self) -> bool:
        """Become the transport's producer; False if that is not possible (then no flow)."""
        transport = self._transport
        if getattr(transport, "disconnected", False):
            return False
        # After daphne's HTTP-to-WebSocket upgrade the HTTP channel that parsed the request
        # stays registered as the producer, though the WebSocket protocol owns the transport.
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()
        transport.registerProducer(self, True)
        self._attached = True
        return True

    def detach(self) -> None:
        if self._attached and getattr(self._transport, "producer", None) is self:
            self._transport.unregisterProducer()
        self._attached = False
        self._writable.set()

    # IPushProducer, called by the transport (on the event loop: daphne runs Twisted's
    # asyncio reactor, so these run in the loop's thread and may touch asyncio objects).

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's interface)
        self._writable.clear()

    def resumeProducing(self) -> None:  # noqa: N802
        self._writable.set()

    def stopProducing(self) -> None:  # noqa: N802
        # The connection is gone; let a waiting writer run into the close.
        self._writable.set()

    # For the relay.

    @property
    def writable_now(self) -> bool:
        return self._writable.is_set()

    async def writable(self) -> None:
        if not self._writable.is_set():
            await self._writable.wait()

    def pause_reading(self) -> None:
        if not self.reading_paused:
            self.reading_paused = True
            self._transport.pauseProducing()

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            with contextlib.suppress(Exception):  # already closed: nothing to resume
                self._transport.resumeProducing()


def _daphne_transport(send: Any) -> Any:
    if not isinstance(send, functools.partial) or not send.args:
        return None
    owner = getattr(send.func, "__self__", None)
    if type(owner).__module__ != "daphne.server" or getattr(send.func, "__name__", "") != "handle_reply":
        return None
    transport = getattr(send.args[0], "transport", None)
    needed = ("registerProducer", "unregisterProducer", "pauseProducing", "resumeProducing")
    if transport is None or not all(hasattr(transport, name) for name in needed):
        return None
    return transport


class ServerFlowMiddleware:
    """ASGI middleware offering `TwistedFlow` to WebSocket consumers when daphne serves them."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            transport = _daphne_transport(send)
            if transport is not None:
                factory: Callable[[], TwistedFlow] = functools.partial(TwistedFlow, transport)
                scope = dict(scope, extensions={**(scope.get("extensions") or {}), EXTENSION: factory})
        return await self.application(scope, receive, send)
