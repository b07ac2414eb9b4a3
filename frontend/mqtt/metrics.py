"""Prometheus metrics of the dashboard's /mqtt endpoint, on the web service's /metrics.

They live in prometheus_client's default registry, which `roost.views.metrics` serves; each
web process counts its own connections (scrape every process, as for any ASGI server).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SESSIONS = Gauge(
    "roost_web_mqtt_sessions",
    "Browser MQTT sessions this web process is relaying to the broker right now.",
)
RELAYED_BYTES = Counter(
    "roost_web_mqtt_relayed_bytes",
    "MQTT bytes relayed between browsers and the broker.",
    ["direction"],
)
REFUSALS = Counter(
    "roost_web_mqtt_refusals",
    "WebSocket connections to /mqtt refused before a session began, by reason.",
    ["reason"],
)
ENDINGS = Counter(
    "roost_web_mqtt_session_endings",
    "Browser sessions the endpoint ended, by reason (the client's own closes are 'client').",
    ["reason"],
)

TO_BROKER = RELAYED_BYTES.labels("to_broker")
TO_BROWSER = RELAYED_BYTES.labels("to_browser")


def refused(reason: str) -> None:
    REFUSALS.labels(reason).inc()


def ended(reason: str) -> None:
    ENDINGS.labels(reason).inc()
