"""A tenant at a glance: its fleet's state, certificates about to expire, what happened last."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from broker.integration.inspect_client import BrokerUnavailable, live_view
from broker.integration.models import ConnectionEvent
from devices.models import AuditEvent, Device, Tenant
from pki.models import Certificate, CertificateStatus

from ..access import tenant_view

EXPIRY_HORIZON = timedelta(days=30)
LATEST = 10


@tenant_view()
def overview(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    # Aggregate names differ from the fields they count, which Django requires.
    counts = Device.objects.filter(tenant=tenant).aggregate(
        n_total=Count("pk"),
        n_online=Count("pk", filter=Q(enabled=True, online=True)),
        n_offline=Count("pk", filter=Q(enabled=True, online=False)),
        n_disabled=Count("pk", filter=Q(enabled=False)),
    )
    now = timezone.now()
    expiring = (Certificate.objects.for_tenant(tenant).with_status(CertificateStatus.ACTIVE, now)
                .filter(not_after__lte=now + EXPIRY_HORIZON).order_by("not_after"))
    try:
        live, live_error = live_view(tenant.slug, timeout=1.0), None
    except BrokerUnavailable as exc:
        live, live_error = None, str(exc)
    return render(request, "frontend/overview.html", {
        "tenant": tenant, "section": "overview", "counts": counts, "live": live, "live_error": live_error,
        "live_connected": sum(1 for session in live.sessions if session.connected) if live else 0,
        "expiring_count": expiring.count(), "expiring": expiring[:LATEST],
        "connections": ConnectionEvent.objects.filter(tenant=tenant).select_related("device")[:LATEST],
        "audit": AuditEvent.objects.filter(tenant=tenant)[:LATEST],
    })
