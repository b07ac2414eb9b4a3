"""ACL endpoints mounted under /api/v1/."""

from __future__ import annotations

from django.urls import URLPattern

api_urlpatterns: list[URLPattern] = []
