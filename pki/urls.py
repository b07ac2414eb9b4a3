"""Public PKI endpoints (CRL, OCSP, CA chain), mounted at /pki/; the enrollment and certificate API under /api/v1/."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import api, views

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
# Routes mounted under /api/v1/.
api_urlpatterns: list[URLPattern] = [
    path("enroll", api.EnrollView.as_view(), name="pki-enroll"),
    path("tenants/<slug:tenant>/certificates", api.TenantCertificatesView.as_view(), name="pki-certificates"),
    path("tenants/<slug:tenant>/certificates/<str:serial>/revoke", api.RevokeCertificateView.as_view(),
         name="pki-certificate-revoke"),
    path("tenants/<slug:tenant>/devices/<str:device>/certificates", api.DeviceCertificatesView.as_view(),
         name="pki-device-certificates"),
    path("tenants/<slug:tenant>/enrollment-tokens", api.EnrollmentTokensView.as_view(),
         name="pki-enrollment-tokens"),
]
