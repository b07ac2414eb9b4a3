"""Routes of the registry API, mounted under /api/v1/."""

from __future__ import annotations

from typing import Any

from rest_framework.routers import SimpleRouter

from roost.api.views import register_root

from . import audit, devices, groups, imports, keys, members, tenants

router = SimpleRouter()
router.register(r"tenants/(?P<tenant>[-a-zA-Z0-9_]+)/api-keys", keys.ApiKeyViewSet, basename="api-key")
register_root("api-keys", "v1:api-key-list")
router.register(r"tenants/(?P<tenant>[-a-zA-Z0-9_]+)/jobs", imports.ImportJobViewSet, basename="job")
register_root("jobs", "v1:job-list")

# The registry's collections. Their routes go last: `devices/{name}/` takes any name, so fixed
# paths below devices/ (`devices/import`) must be matched first.
TENANT = r"tenants/(?P<tenant>[-a-zA-Z0-9_]+)"
registry = SimpleRouter()
registry.register(r"tenants", tenants.TenantViewSet, basename="tenant")
registry.register(rf"{TENANT}/devices/(?P<device>[^/]+)/connections", devices.DeviceConnectionViewSet,
                  basename="device-connection")
registry.register(rf"{TENANT}/devices/(?P<device>[^/]+)/retained", devices.DeviceRetainedViewSet,
                  basename="device-retained")
registry.register(rf"{TENANT}/devices", devices.DeviceViewSet, basename="device")
registry.register(rf"{TENANT}/groups", groups.GroupViewSet, basename="group")
registry.register(rf"{TENANT}/members", members.MemberViewSet, basename="member")
registry.register(rf"{TENANT}/audit-events", audit.AuditEventViewSet, basename="audit-event")
register_root("tenants", "v1:tenant-list", tenant_scoped=False)
register_root("devices", "v1:device-list")
register_root("groups", "v1:group-list")
register_root("members", "v1:member-list")
register_root("audit-events", "v1:audit-event-list")

urlpatterns: list[Any] = [*router.urls, *imports.urlpatterns, *registry.urls]
