"""Routes of the registry API, mounted under /api/v1/."""

from __future__ import annotations

from typing import Any

from rest_framework.routers import SimpleRouter

from roost.api.views import register_root

from . import keys

router = SimpleRouter()
router.register(r"tenants/(?P<tenant>[-a-zA-Z0-9_]+)/api-keys", keys.ApiKeyViewSet, basename="api-key")
register_root("api-keys", "v1:api-key-list")

urlpatterns: list[Any] = [*router.urls]
