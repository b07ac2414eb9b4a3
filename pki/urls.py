"""Public PKI endpoints (CRL, OCSP, CA chain), mounted at /pki/; the enrollment and certificate API under /api/v1/."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

from . import views
from .api import urls as api_urls

app_name = "pki"
urlpatterns: list[URLPattern] = [
    path("crl/<int:ca_id>.crl", views.crl_der, name="crl-der"),
    path("crl/<int:ca_id>.pem", views.crl_pem, name="crl-pem"),
    path("ca/root.pem", views.root_pem, name="root-pem"),
    path("ca/<int:ca_id>.pem", views.ca_pem, name="ca-pem"),
    path("ca/<int:ca_id>.cer", views.ca_der, name="ca-der"),
    path("ocsp", views.ocsp_post, name="ocsp"),
    path("ocsp/<path:encoded>", views.ocsp_get, name="ocsp-get"),
]
# Routes mounted under /api/v1/ (roost/api/urls.py): the PKI's REST API, see pki/api/.
api_urlpatterns: list[Any] = api_urls.urlpatterns
