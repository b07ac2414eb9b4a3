"""Routes of the ACL API, mounted under /api/v1/ (through acl.urls.api_urlpatterns)."""

from __future__ import annotations

from typing import Any

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from roost.api.views import register_root

from .views import AclExplainView, AclImpactView, AclRuleViewSet

TENANT = r"tenants/(?P<tenant>[-a-zA-Z0-9_]+)"

router = SimpleRouter()
router.register(rf"{TENANT}/acl-rules", AclRuleViewSet, basename="acl-rule")
register_root("acl-rules", "v1:acl-rule-list")

urlpatterns: list[Any] = [
    re_path(rf"^{TENANT}/acl/explain/$", AclExplainView.as_view(), name="acl-explain"),
    re_path(rf"^{TENANT}/acl/impact/$", AclImpactView.as_view(), name="acl-impact"),
    *router.urls,
]
