"""Everything under /api/v1/: the root and each app's `api/urls.py`."""

from __future__ import annotations

from typing import Any

from django.urls import path

from acl.urls import api_urlpatterns as acl_api
from broker.integration.api.urls import urlpatterns as retained_api
from devices.api.urls import urlpatterns as devices_api
from pki.urls import api_urlpatterns as pki_api

from .views import ApiRootView

urlpatterns: list[Any] = [
    path("", ApiRootView.as_view(), name="root"),
    *devices_api,
    *pki_api,
    *acl_api,
    *retained_api,
]
