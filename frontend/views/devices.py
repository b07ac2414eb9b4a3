"""The device list (filters, search, sort, pages, bulk actions) and creating a device with its
certificate in one step, with the one-time download of a generated key."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from devices.audit import Actor
from devices.models import Device, Role, Tenant
from devices.services import create_device, delete_device, set_device_enabled
from pki.errors import PkiError
from pki.issuance import IssuedCertificate, issue_from_csr, issue_with_generated_key

from .. import bundles
from ..access import tenant_view
from ..filters import DeviceFilter
from ..forms import BulkDeviceForm, CertificateRequestForm, DeviceCreateForm, add_service_errors
from .common import htmx_partial, paginate

# (label, ascending sort, descending sort, hidden on a phone); a column without sorts is not sortable.
_COLUMNS = [("Name", "name", "-name", False), ("State", "", "", False),
            ("Last seen", "last_seen", "-last_seen", False), ("Address", "", "", True),
            ("Protocol", "", "", True), ("Group", "group", "group", False), ("Attributes", "", "", True)]


def _columns(devices: DeviceFilter) -> list[dict[str, str | bool]]:
    """Header cells: a click sorts by the column, a second click reverses (newest first for times)."""
    current = (getattr(devices.form, "cleaned_data", None) or {}).get("sort") or "name"
    columns: list[dict[str, str | bool]] = []
    for label, up, down, narrow in _COLUMNS:
        direction = "ascending" if current == up else "descending" if current == down else ""
        first = down if up == "last_seen" else up  # times start with the newest
        following = (down if current == up else up) if direction else first
        columns.append({"label": label, "key": up, "next": following, "direction": direction, "narrow": narrow})
    return columns


@tenant_view()
def device_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    devices = DeviceFilter(request.GET, tenant=tenant)
    page = paginate(request, devices.qs)
    query = request.GET.copy()
    query.pop("page", None)
    context = {"tenant": tenant, "section": "devices", "filter": devices, "page": page,
               "query": query.urlencode(), "total": page.paginator.count, "columns": _columns(devices)}
    template = "frontend/devices/_table.html" if htmx_partial(request) else "frontend/devices/list.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _list_url(request: HttpRequest, tenant: Tenant) -> str:
    # The list's filters come back as a query string, re-encoded: never a URL of anyone's choosing.
    back = QueryDict(request.POST.get("back", "")).urlencode()
    base = reverse("frontend:devices", args=[tenant.slug])
    return f"{base}?{back}" if back else base


@require_POST
@tenant_view(Role.OPERATOR)
def device_bulk(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """Enable, disable or delete the ticked devices, after a confirmation page."""
    submitted = [int(v) for v in request.POST.getlist("pk") if v.isdigit()]
    ids = list(Device.objects.filter(tenant=tenant, pk__in=submitted).values_list("pk", flat=True))
    # Devices that are not this tenant's (or no longer exist) are dropped, not an error.
    data = request.POST.copy()
    data.setlist("pk", [str(pk) for pk in ids])
    form = BulkDeviceForm(ids, data)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return HttpResponseRedirect(_list_url(request, tenant))
    action = form.cleaned_data["action"]
    chosen = list(Device.objects.filter(tenant=tenant, pk__in=form.cleaned_data["pk"]).order_by("name"))
    if not form.cleaned_data["confirm"]:
        return render(request, "frontend/devices/bulk_confirm.html", {
            "tenant": tenant, "section": "devices", "devices": chosen, "action": action,
            "action_label": dict(BulkDeviceForm.ACTIONS)[action],
            "back": request.POST.get("back", ""),
        })
    actor = Actor.for_user(request.user)
    with transaction.atomic():
        for device in chosen:
            if action == BulkDeviceForm.DELETE:
                delete_device(device, actor=actor)
            elif device.enabled != (action == BulkDeviceForm.ENABLE):
                set_device_enabled(device, action == BulkDeviceForm.ENABLE, actor=actor)
    done = {"enable": "Enabled", "disable": "Disabled", "delete": "Deleted"}[action]
    messages.success(request, f"{done} {len(chosen)} device{'s' if len(chosen) != 1 else ''}.")
    return HttpResponseRedirect(_list_url(request, tenant))


def issue_for(device: Device, form: CertificateRequestForm, actor: Actor) -> IssuedCertificate:
    """Issue the certificate the form asks for: from the CSR it checked, or with a generated key."""
    days = form.cleaned_data.get("days")
    if form.cleaned_data.get("csr"):
        return issue_from_csr(device, form.cleaned_data["csr"], actor=actor, days=days)
    return issue_with_generated_key(device, actor=actor, days=days)


def certificate_error(form: CertificateRequestForm, exc: PkiError) -> None:
    """A refusal of the issuance, shown where the key came from."""
    if form.cleaned_data.get("csr"):
        field = "csr_file" if form.cleaned_data.get("csr_file") else "csr_text"
    else:
        field = None
    form.add_error(field, exc.message)


@tenant_view(Role.OPERATOR)
def device_create(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    form = DeviceCreateForm(tenant, request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        actor = Actor.for_user(request.user)
        try:
            # One step: if the certificate cannot be issued, the device is not created either.
            with transaction.atomic():
                device = create_device(tenant, data["name"], display_name=data["display_name"],
                                       group=data["group"], attributes=data["attributes"], actor=actor)
                issued = issue_for(device, form, actor)
        except ValidationError as exc:
            add_service_errors(form, exc)
        except PkiError as exc:
            certificate_error(form, exc)
        else:
            token = bundles.keep(request.user, device, issued)
            messages.success(request, f"Created {device.name} and issued certificate {issued.certificate.serial}.")
            return redirect("frontend:device-issued", tenant.slug, device.name, token)
    return render(request, "frontend/devices/create.html", {"tenant": tenant, "section": "devices", "form": form})


@tenant_view(Role.OPERATOR)
def device_issued(request: HttpRequest, tenant: Tenant, name: str, token: str) -> HttpResponse:
    """The result page of an issuance: the one-time downloads and the line to try them."""
    device = get_object_or_404(Device, tenant=tenant, name=name)
    bundle = bundles.peek(request.user, device, token)
    return render(request, "frontend/devices/issued.html", {
        "tenant": tenant, "section": "devices", "device": device, "bundle": bundle, "token": token,
        "command": bundles.mosquitto_command(device.name),
    })


@require_POST
@tenant_view(Role.OPERATOR)
def device_bundle(request: HttpRequest, tenant: Tenant, name: str, token: str, kind: str) -> HttpResponse:
    """Hand out the held bundle once, as a zip of PEM files or a PKCS#12 file, and forget it."""
    device = get_object_or_404(Device, tenant=tenant, name=name)
    bundle = bundles.take(request.user, device, token)
    if bundle is None or (kind == "p12" and not bundle.p12):
        messages.error(request, "This download is gone: it was already downloaded, or it expired. "
                                "Issue a new certificate to get a new key.")
        return redirect("frontend:device-issued", tenant.slug, device.name, token)
    if kind == "p12":
        response = HttpResponse(bundle.p12, content_type="application/x-pkcs12")
        filename = f"{device.name}.p12"
    else:
        response = HttpResponse(bundle.zip(), content_type="application/zip")
        filename = f"{device.name}.zip"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response

