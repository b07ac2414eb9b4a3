"""ASGI entry point: Django over HTTP, Channels consumers over WebSocket."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "roost.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from . import daphne_server  # noqa: E402, F401 - leaves multipart bodies to Django

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402

from frontend.mqtt.flow import ServerFlowMiddleware  # noqa: E402
from frontend.mqtt.origin import ExactOriginValidator  # noqa: E402
from frontend.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Outermost first: the server's flow control is found on the raw `send`; a foreign or
        # missing Origin is refused (403) before the session is even looked up.
        "websocket": ServerFlowMiddleware(
            ExactOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
