"""Routes of the PKI API, mounted under /api/v1/ (through pki.urls.api_urlpatterns)."""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.routers import SimpleRouter

from roost.api.views import register_root

from .certificates import CertificateViewSet, DeviceCertificateViewSet
from .enrollment import EnrollmentTokenViewSet, EnrollView

TENANT = r"tenants/(?P<tenant>[-a-zA-Z0-9_]+)"

router = SimpleRouter()
router.register(rf"{TENANT}/devices/(?P<device>[^/]+)/certificates", DeviceCertificateViewSet,
                basename="device-certificate")
router.register(rf"{TENANT}/certificates", CertificateViewSet, basename="certificate")
router.register(rf"{TENANT}/enrollment-tokens", EnrollmentTokenViewSet, basename="enrollment-token")
register_root("certificates", "v1:certificate-list")
register_root("enrollment-tokens", "v1:enrollment-token-list")

urlpatterns: list[Any] = [
    # Devices enroll themselves here with a token (no tenant in the path: the token names it).
    path("enroll", EnrollView.as_view(), name="pki-enroll"),
    *router.urls,
]
