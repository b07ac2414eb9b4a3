"""Routes of the retained-state API, mounted under /api/v1/ by roost/api/urls.py."""

from __future__ import annotations

from typing import Any

from django.urls import re_path

from roost.api.views import register_root

from .views import RetainedView

urlpatterns: list[Any] = [
    re_path(r"^tenants/(?P<tenant>[-a-zA-Z0-9_]+)/retained/$", RetainedView.as_view(), name="retained"),
]
register_root("retained", "v1:retained")
