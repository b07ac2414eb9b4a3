"""Messages received per tenant, and their rate: what the portal's overview shows.

Counted by a `published` hook on the sender's mountpoint (no parsing, no allocation beyond
the counter), turned into a rate once per window by a timer on the event loop, never per
message. Node-local: in a cluster each node counts what its own clients sent.
"""

from __future__ import annotations

from typing import Any

from broker.engine.broker import Broker, Scheduler
from broker.engine.interfaces import Principal
from broker.engine.message import Message

WINDOW = 5.0


class TrafficMeter:
    __slots__ = ("counts", "rates", "window", "_last", "_timer")

    def __init__(self, window: float = WINDOW) -> None:
        self.counts: dict[str, int] = {}
        """Messages received since start, by mountpoint."""
        self.rates: dict[str, float] = {}
        """Messages per second over the last full window, by mountpoint."""
        self.window = window
        self._last: dict[str, int] = {}
        self._timer: Any = None

    def install(self, broker: Broker) -> None:
        broker.hooks.published.append(self.published)
        self._timer = broker.scheduler.call_later(self.window, self._tick, broker.scheduler)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def published(self, principal: Principal | None, message: Message) -> None:
        if principal is not None:  # the broker's own messages (presence, $SYS) are not traffic
            counts = self.counts
            mountpoint = principal.mountpoint
            counts[mountpoint] = counts.get(mountpoint, 0) + 1

    def _tick(self, scheduler: Scheduler) -> None:
        last, counts = self._last, self.counts
        self.rates = {mp: (n - last.get(mp, 0)) / self.window for mp, n in counts.items()}
        self._last = dict(counts)
        self._timer = scheduler.call_later(self.window, self._tick, scheduler)

    def of(self, mountpoint: str) -> dict[str, float | int]:
        return {"messages_received": self.counts.get(mountpoint, 0),
                "messages_per_second": round(self.rates.get(mountpoint, 0.0), 2)}
