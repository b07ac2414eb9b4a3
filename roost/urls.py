from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from acl.urls import api_urlpatterns as acl_api
from pki.urls import api_urlpatterns as pki_api

from . import views

admin.site.site_header = "Roost administration"
admin.site.site_title = "Roost"

api_v1 = [*pki_api, *acl_api]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("pki/", include("pki.urls")),
    path("portal/", include("frontend.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
]
