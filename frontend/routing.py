"""WebSocket routes served through Channels: the dashboard's MQTT endpoint at /mqtt."""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from .mqtt.consumer import MqttConsumer
from .mqtt.origin import refuse_unknown_path

websocket_urlpatterns: list[URLPattern] = [
    path("mqtt", MqttConsumer.as_asgi()),
    # Any other WebSocket path: 403 at the handshake rather than a routing error (500).
    # An ASGI application, which Channels' URLRouter takes; the stubs expect a Django view.
    re_path(r"", refuse_unknown_path),  # type: ignore[arg-type]
]
