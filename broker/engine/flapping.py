"""Flapping detection: an identity that connects too often is refused for a while.

A device in a reconnect loop (or two clients fighting over one identity, each taking the
session over from the other) costs a TLS handshake, a session takeover and a will per round
and floods presence events. Like EMQX's flapping detection: more than `max_connects`
accepted authentications of one identity within `window` seconds ban it for `ban` seconds;
refused CONNECTs get CONNACK 0x9F (connection rate exceeded; 3.1.1: 5, not authorized).

Counted after authentication, so only the identity itself (its certificate, key or
password) can get itself banned: a stranger sending its client id cannot.
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.engine.broker import Broker

logger = logging.getLogger("roost.broker.flapping")

Identity = tuple[str, str]
"""(mountpoint, client id): one identity per tenant namespace."""


class FlapDetector:
    __slots__ = ("max_connects", "window", "ban", "_recent", "_banned", "refused", "bans", "_checks")

    def __init__(self, max_connects: int, window: float, ban: float) -> None:
        self.max_connects = max_connects
        self.window = window
        self.ban = ban
        self._recent: dict[Identity, deque[float]] = {}
        self._banned: dict[Identity, float] = {}
        self.refused = 0
        """CONNECTs refused because their identity was banned (or got banned by them)."""
        self.bans = 0
        self._checks = 0

    @property
    def enabled(self) -> bool:
        return self.max_connects > 0

    def banned_until(self, identity: Identity, now: float) -> float | None:
        until = self._banned.get(identity)
        if until is None:
            return None
        if until <= now:
            del self._banned[identity]
            return None
        return until

    def admit(self, identity: Identity, now: float) -> bool:
        """Record one connect of `identity`; False when it is (or now becomes) banned."""
        self._checks += 1
        if self._checks & 1023 == 0:
            self._sweep(now)
        if self.banned_until(identity, now) is not None:
            self.refused += 1
            return False
        times = self._recent.get(identity)
        if times is None:
            times = self._recent[identity] = deque(maxlen=self.max_connects + 1)
        times.append(now)
        horizon = now - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) <= self.max_connects:
            return True
        del self._recent[identity]
        self._banned[identity] = now + self.ban
        self.bans += 1
        self.refused += 1
        mountpoint, client_id = identity
        logger.warning("%r%s connected more than %d times in %gs: refused for %gs (flapping)",
                       client_id, f" in {mountpoint.rstrip('/')}" if mountpoint else "",
                       self.max_connects, self.window, self.ban)
        return False

    def _sweep(self, now: float) -> None:
        """Forget identities quiet for a whole window, and bans that ended (bounded memory)."""
        horizon = now - self.window
        for identity in [i for i, t in self._recent.items() if not t or t[-1] <= horizon]:
            del self._recent[identity]
        for identity in [i for i, until in self._banned.items() if until <= now]:
            del self._banned[identity]


_DETECTORS: weakref.WeakKeyDictionary[Broker, FlapDetector] = weakref.WeakKeyDictionary()


def detector_for(broker: Broker) -> FlapDetector:
    """The broker's detector, made from its config on first use."""
    detector = _DETECTORS.get(broker)
    if detector is None:
        config = broker.config
        detector = _DETECTORS[broker] = FlapDetector(config.flap_max, config.flap_window, config.flap_ban)
    return detector
