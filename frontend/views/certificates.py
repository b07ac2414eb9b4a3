"""A tenant's certificates: all, active, expiring soon, revoked, expired; its CAs, CRL and OCSP."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from devices.audit import Actor
from devices.models import Role, Tenant
from pki.ca import root_ca
from pki.errors import PkiError
from pki.models import CaKind, Certificate, CertificateAuthority, CertificateStatus
from pki.revocation import revoke_certificate

from ..access import tenant_view
from ..forms import RevokeForm
from .common import htmx_partial, paginate

EXPIRING = timedelta(days=30)
VIEWS = {
    "all": "All",
    "active": "Active",
    "expiring": "Expiring within 30 days",
    "revoked": "Revoked",
    "expired": "Expired",
}


def _public(name: str, **kwargs: object) -> str:
    return settings.ROOST_PUBLIC_URL + reverse(name, kwargs=kwargs)


@tenant_view()
def certificate_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    view = request.GET.get("status", "all")
    view = view if view in VIEWS else "all"
    now = timezone.now()
    certificates = Certificate.objects.for_tenant(tenant).select_related("device")
    if view == "expiring":
        certificates = certificates.with_status(CertificateStatus.ACTIVE, now).filter(not_after__lte=now + EXPIRING)
    elif view != "all":
        certificates = certificates.with_status(view, now)
    query = request.GET.get("q", "").strip()
    if query:
        certificates = certificates.filter(Q(device_name__icontains=query) | Q(serial__icontains=query.lower()))
    order = ("not_after", "pk") if view == "expiring" else ("-created", "-id")
    page = paginate(request, certificates.order_by(*order))
    issuing = CertificateAuthority.objects.filter(kind=CaKind.ISSUING, tenant=tenant).order_by("-active", "-created")
    root = root_ca()
    context = {
        "tenant": tenant, "section": "certificates", "page": page, "view": view, "views": VIEWS, "q": query,
        "revoke_form": RevokeForm(),
        "authorities": [{"ca": ca, "pem": _public("pki:ca-pem", ca_id=ca.pk), "crl": _public("pki:crl-der", ca_id=ca.pk)}
                        for ca in issuing],
        "root": root, "root_pem": _public("pki:root-pem"), "ocsp": _public("pki:ocsp"),
    }
    template = "frontend/certificates/_table.html" if htmx_partial(request) else "frontend/certificates/list.html"
    return render(request, template, context)


def revoke(request: HttpRequest, certificate: Certificate) -> None:
    """Revoke with the reason the form names, and say what happened."""
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a revocation reason from the list.")
        return
    try:
        revoke_certificate(certificate, form.cleaned_data["reason"], actor=Actor.for_user(request.user))
    except PkiError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Revoked certificate {certificate.serial} ({form.cleaned_data['reason']}); "
                                  "a device connected with it is disconnected.")


@require_POST
@tenant_view(Role.OPERATOR)
def certificate_revoke(request: HttpRequest, tenant: Tenant, serial: str) -> HttpResponse:
    revoke(request, get_object_or_404(Certificate, tenant=tenant, serial=serial))
    back = request.POST.get("status", "all")
    url = reverse("frontend:certificates", args=[tenant.slug])
    return redirect(f"{url}?status={back}" if back in VIEWS else url)
