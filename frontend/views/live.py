"""The live pages: the topic explorer. Its data arrives in the browser over /mqtt
(frontend/assets/live/); the page itself only lays out the panels and seeds the tree with
what the registry already knows, so that branches show before their first message."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from broker.integration.models import RetainedMessage
from devices.models import Device, Tenant

from ..access import portal, tenant_view

# The seed is a hint, not an inventory: past these many the tree grows from messages alone.
SEED_TOPICS = 2000
SEED_DEVICES = 1000


def explorer_seed(tenant: Tenant) -> dict[str, list[str]]:
    """Retained topics (shown with their retained marker) and branches worth opening: each
    device's own `devices/NAME`, and the platform's presence and event topics."""
    topics = list(RetainedMessage.objects.filter(tenant=tenant).order_by("topic")
                  .values_list("topic", flat=True)[:SEED_TOPICS])
    names = Device.objects.filter(tenant=tenant).order_by("name").values_list("name", flat=True)[:SEED_DEVICES]
    branches = [f"devices/{name}" for name in names] + ["$roost/presence", "$roost/events"]
    return {"topics": topics, "branches": branches}


@tenant_view()
def explorer(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """The topic explorer; `?topic=a/b` opens with that topic selected and its branch open."""
    return render(request, "frontend/explorer.html", {
        "tenant": tenant, "section": "explorer", "seed": explorer_seed(tenant),
        "topic": request.GET.get("topic", "").strip()[:1024],
        "can_publish": portal(request).can_operate,
    })
