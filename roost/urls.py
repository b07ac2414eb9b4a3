from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from . import views
from .api.docs import RedocView, SchemaView, SwaggerView
from .api.urls import urlpatterns as api_v1

admin.site.site_header = "Roost administration"
admin.site.site_title = "Roost"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("pki/", include("pki.urls")),
    path("", RedirectView.as_view(pattern_name="frontend:home"), name="root"),
    path("accounts/", include("frontend.accounts_urls")),
    path("portal/", include("frontend.urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", RedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
]
