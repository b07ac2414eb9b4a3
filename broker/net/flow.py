"""Write batching: output collected per connection, written once per loop iteration."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.net.protocol import MQTTProtocol


class WriteBatcher:
    """Connections with pending output, flushed by one callback per loop iteration.

    A publisher fanning out to many subscribers, or many publishers feeding one
    subscriber, then costs one transport write per connection per iteration instead of
    one per packet.
    """

    __slots__ = ("_loop", "_dirty", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[MQTTProtocol] = []
        self._scheduled = False

    def mark(self, protocol: MQTTProtocol) -> None:
        self._dirty.append(protocol)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        if not dirty:
            return
        self._dirty = []
        for protocol in dirty:
            protocol.flush()
