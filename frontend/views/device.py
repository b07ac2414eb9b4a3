"""One device: its registry fields, presence, certificates, connection log and actions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from broker.integration.models import ConnectionEvent, RetainedMessage
from devices.audit import Actor
from devices.models import Device, Role, Tenant
from devices.services import delete_device, kick_device, update_device
from pki.errors import PkiError
from pki.models import Certificate

from .. import bundles
from ..access import tenant_view
from ..forms import CertificateRequestForm, DeviceEditForm, RevokeForm, add_service_errors
from .certificates import revoke
from .devices import certificate_error, issue_for

CONNECTION_LOG = 25


def _device(tenant: Tenant, name: str) -> Device:
    return get_object_or_404(Device.objects.select_related("tenant", "group"), tenant=tenant, name=name)


def _edit_form(device: Device, data: Any = None) -> DeviceEditForm:
    initial = {"display_name": device.display_name, "group": device.group_id,
               "attributes": device.attributes, "enabled": device.enabled}
    return DeviceEditForm(device.tenant, data, initial=initial)


def _presence(device: Device) -> dict[str, Any]:
    """What the broker last wrote about the device; the serial is that of the live connection."""
    latest = device.connection_events.order_by("-at", "-id").first()
    live = latest if device.online and latest is not None and latest.event == ConnectionEvent.CONNECTED else None
    return {"latest": latest, "live": live}


def _render(request: HttpRequest, device: Device, *, edit_form: DeviceEditForm | None = None,
            issue_form: CertificateRequestForm | None = None, status: int = 200) -> HttpResponse:
    tenant = device.tenant
    certificates = Certificate.objects.filter(tenant=tenant, device=device).select_related("issuer")
    return render(request, "frontend/devices/detail.html", {
        "tenant": tenant, "section": "devices", "device": device,
        "presence": _presence(device),
        "edit_form": edit_form or _edit_form(device),
        "issue_form": issue_form or CertificateRequestForm(),
        "revoke_form": RevokeForm(),
        "certificates": certificates,
        "connections": device.connection_events.order_by("-at", "-id")[:CONNECTION_LOG],
        "retained_count": RetainedMessage.objects.filter(tenant=tenant, publisher=device).count(),
    }, status=status)


@tenant_view(Role.VIEWER, post_role=Role.OPERATOR)
def device_detail(request: HttpRequest, tenant: Tenant, name: str) -> HttpResponse:
    """The device page; a POST saves the edit form on it."""
    device = _device(tenant, name)
    if request.method != "POST":
        return _render(request, device)
    form = _edit_form(device, request.POST)
    if form.is_valid():
        # Only what changed goes to the service, so that the audit names it (device.disable, …).
        changes = {k: v for k, v in form.cleaned_data.items() if getattr(device, k) != v}
        try:
            if changes:
                update_device(device, actor=Actor.for_user(request.user), **changes)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Saved {device.name}." if changes else "Nothing changed.")
            return redirect("frontend:device", tenant.slug, device.name)
    return _render(request, device, edit_form=form)


@require_POST
@tenant_view(Role.OPERATOR)
def device_kick(request: HttpRequest, tenant: Tenant, name: str) -> HttpResponse:
    device = _device(tenant, name)
    kick_device(device, actor=Actor.for_user(request.user))
    messages.success(request, f"Asked the broker to disconnect {device.name}; it may reconnect at once "
                              "(disable it to keep it out).")
    return redirect("frontend:device", tenant.slug, device.name)


@tenant_view(Role.OPERATOR)
def device_delete(request: HttpRequest, tenant: Tenant, name: str) -> HttpResponse:
    """GET asks for confirmation; POST deletes."""
    device = _device(tenant, name)
    if request.method == "POST":
        delete_device(device, actor=Actor.for_user(request.user))
        messages.success(request, f"Deleted {device.name}. Its certificates stay listed, and revoked ones "
                                  "in the CRL.")
        return redirect("frontend:devices", tenant.slug)
    active = Certificate.objects.filter(device=device).with_status("active").count()
    return render(request, "frontend/devices/delete_confirm.html", {
        "tenant": tenant, "section": "devices", "device": device, "active_certificates": active,
    })


@require_POST
@tenant_view(Role.OPERATOR)
def certificate_issue(request: HttpRequest, tenant: Tenant, name: str) -> HttpResponse:
    device = _device(tenant, name)
    form = CertificateRequestForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            issued = issue_for(device, form, Actor.for_user(request.user))
        except PkiError as exc:
            certificate_error(form, exc)
        else:
            token = bundles.keep(request.user, device, issued)
            messages.success(request, f"Issued certificate {issued.certificate.serial} for {device.name}.")
            return redirect("frontend:device-issued", tenant.slug, device.name, token)
    return _render(request, device, issue_form=form)


@require_POST
@tenant_view(Role.OPERATOR)
def certificate_revoke(request: HttpRequest, tenant: Tenant, name: str, serial: str) -> HttpResponse:
    device = _device(tenant, name)
    revoke(request, get_object_or_404(Certificate, tenant=tenant, device=device, serial=serial))
    return redirect("frontend:device", tenant.slug, device.name)


@tenant_view()
def certificate_pem(request: HttpRequest, tenant: Tenant, name: str, serial: str) -> HttpResponse:
    """The certificate followed by its issuing CA: public, so any member may download it."""
    device = _device(tenant, name)
    certificate = get_object_or_404(Certificate.objects.select_related("issuer"), tenant=tenant,
                                    device=device, serial=serial)
    response = HttpResponse(certificate.certificate_pem + certificate.issuer.certificate_pem,
                            content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{device.name}-{serial}.pem"'
    return response

