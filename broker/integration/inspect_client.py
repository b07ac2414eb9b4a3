"""The web side of `inspect.py`: ask the running broker for a tenant's live sessions.

The broker listens on loopback, on `settings.ROOST_BROKER_METRICS_PORT`. Callers get
`BrokerUnavailable` (with a reason a person can read) whenever the answer cannot be had:
metrics port off, nothing listening, a refusal, a timeout or a malformed answer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings

from .inspect import HEADER, sign_request

DEFAULT_TIMEOUT = 2.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class BrokerUnavailable(Exception):
    """The broker's session view could not be read; the message says why."""


@dataclass(frozen=True, slots=True)
class LiveSubscription:
    topic_filter: str
    qos: int


@dataclass(frozen=True, slots=True)
class LiveSession:
    client_id: str
    kind: str
    """"device", "role" (a portal user through the bridge), "service" or "unknown"."""
    device: str | None
    role: str | None
    service: str | None
    connected: bool
    remote_address: str | None
    protocol_version: int | None
    certificate_serial: str | None
    subscriptions: tuple[LiveSubscription, ...]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _session(raw: Any) -> LiveSession:
    if not isinstance(raw, dict) or not isinstance(raw.get("client_id"), str):
        raise ValueError("a session without a client id")
    subscriptions = []
    for sub in raw.get("subscriptions") or []:
        if not isinstance(sub, dict) or not isinstance(sub.get("filter"), str) or sub.get("qos") not in (0, 1, 2):
            raise ValueError("a malformed subscription")
        subscriptions.append(LiveSubscription(sub["filter"], int(sub["qos"])))
    version = raw.get("protocol_version")
    return LiveSession(
        client_id=raw["client_id"], kind=_text(raw.get("kind")) or "unknown", device=_text(raw.get("device")),
        role=_text(raw.get("role")), service=_text(raw.get("service")), connected=raw.get("connected") is True,
        remote_address=_text(raw.get("remote_address")),
        protocol_version=version if isinstance(version, int) else None,
        certificate_serial=_text(raw.get("certificate_serial")), subscriptions=tuple(subscriptions),
    )


@dataclass(frozen=True, slots=True)
class LiveView:
    sessions: list[LiveSession]
    messages_received: int
    """PUBLISH packets the tenant's clients sent since the broker started."""
    messages_per_second: float
    """Their rate over the broker's last few seconds."""


def live_sessions(tenant: str, *, port: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[LiveSession]:
    """The tenant's sessions as the running broker holds them now; raises BrokerUnavailable."""
    return live_view(tenant, port=port, timeout=timeout).sessions


def live_view(tenant: str, *, port: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> LiveView:
    """The tenant's sessions and traffic as the running broker sees them now; raises BrokerUnavailable."""
    port = settings.ROOST_BROKER_METRICS_PORT if port is None else port
    if not port:
        raise BrokerUnavailable("the broker's metrics port is off (ROOST_BROKER_METRICS_PORT=0)")
    url = f"http://127.0.0.1:{port}/sessions?{urlencode({'tenant': tenant})}"
    request = urllib.request.Request(url, headers={HEADER: sign_request(tenant)})
    try:
        # Loopback only, and no proxy from the environment may redirect it.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as answer:
            raw = answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise BrokerUnavailable(f"the broker refused the request ({exc.code})") from None
    except (OSError, ValueError) as exc:  # refused, timed out, reset
        reason = getattr(exc, "reason", exc)
        raise BrokerUnavailable(f"the broker did not answer on 127.0.0.1:{port} ({reason})") from None
    if len(raw) > MAX_ANSWER_BYTES:
        raise BrokerUnavailable("the broker's answer was too large")
    try:
        body = json.loads(raw)
        sessions = [_session(item) for item in body["sessions"]]
        traffic = body.get("traffic") or {}
        received, rate = traffic.get("messages_received", 0), traffic.get("messages_per_second", 0.0)
        if not isinstance(received, int) or not isinstance(rate, int | float):
            raise ValueError("malformed traffic figures")
        return LiveView(sessions, received, float(rate))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BrokerUnavailable(f"the broker's answer was malformed ({exc})") from None
