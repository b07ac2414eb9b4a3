"""ACL endpoints mounted under /api/v1/: rules, explain and impact (see acl/api/)."""

from __future__ import annotations

from typing import Any

from .api import urls as api_urls

api_urlpatterns: list[Any] = api_urls.urlpatterns
