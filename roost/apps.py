from __future__ import annotations

from django.apps import AppConfig


class RoostConfig(AppConfig):
    name = "roost"
    verbose_name = "Roost"

    def ready(self) -> None:
        # Registers the OpenAPI extension for API-key authentication.
        from .api import schema  # noqa: F401
