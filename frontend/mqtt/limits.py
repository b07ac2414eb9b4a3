"""Per-user limits of the /mqtt endpoint: open connections, PUBLISH rate, packet size.

Counters live in Django's cache (Redis when REDIS_URL is set), so the limits hold across
web processes; without Redis each process counts its own, like the API throttles. All
cache calls are synchronous: the consumer runs them in a worker thread.

Open connections are slots `mqtt-ws:conn:<user>:<n>` claimed with an atomic `add` and a
short lease the connection keeps renewing, so a web process that dies frees its slots
after LEASE_SECONDS instead of holding them forever.

The PUBLISH rate is held twice: a token bucket per connection refuses a flood at once, and
a counter per user and RATE_WINDOW seconds, fed at each re-check, catches a user who
spreads the flood over several connections (or web processes).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

LEASE_SECONDS = 30
RATE_WINDOW = 10


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int
    max_rate: int  # PUBLISH packets per second, per user
    max_packet: int  # bytes, one MQTT packet from the browser (CONNECT included)

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(settings.ROOST_MQTT_WS_MAX_CONNECTIONS, settings.ROOST_MQTT_WS_MAX_RATE,
                   settings.ROOST_MQTT_WS_MAX_PACKET)


def _slot(user_id: int, index: int) -> str:
    return f"mqtt-ws:conn:{user_id}:{index}"


def claim_slot(user_id: int, limit: int, owner: str) -> str | None:
    """Take a free connection slot of the user for `owner`; None when all are taken."""
    for index in range(limit):
        key = _slot(user_id, index)
        if cache.add(key, owner, LEASE_SECONDS):
            return key
    return None


def renew_slot(key: str, user_id: int, limit: int, owner: str) -> str | None:
    """Extend the lease on `key`; a slot lost meanwhile (a stalled process) is claimed anew."""
    if cache.get(key) == owner and cache.touch(key, LEASE_SECONDS):
        return key
    return claim_slot(user_id, limit, owner)


def release_slot(key: str, owner: str) -> None:
    if cache.get(key) == owner:
        cache.delete(key)


def report_publishes(user_id: int, count: int, rate: int, now: float) -> bool:
    """Add `count` PUBLISH packets to the user's current window; False once over the rate."""
    if count <= 0:
        return True
    key = f"mqtt-ws:rate:{user_id}:{int(now // RATE_WINDOW)}"
    if cache.add(key, count, RATE_WINDOW * 2):
        total = count
    else:
        try:
            total = cache.incr(key, count)
        except ValueError:  # expired between add and incr
            cache.add(key, count, RATE_WINDOW * 2)
            total = count
    return total <= rate * RATE_WINDOW


class TokenBucket:
    """`rate` events per second with bursts of up to one second's worth."""

    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: int, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.stamp = now

    def take(self, count: int, now: float) -> bool:
        """Spend `count` tokens; False when that leaves the bucket in debt."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.tokens = (tokens if tokens < self.rate else self.rate) - count
        self.stamp = now
        return self.tokens >= 0
