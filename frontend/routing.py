"""WebSocket routes served through Channels (the dashboard's MQTT endpoint lands at /mqtt)."""

from __future__ import annotations

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
