"""The retained state of a tenant's topic tree and of each device."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from broker.integration.models import RetainedMessage
from broker.integration.services import clear_retained
from devices.audit import Actor
from devices.models import Device, Role, Tenant

from ..access import tenant_view


def _with_rendering(rows: Any) -> list[dict[str, Any]]:
    items = []
    for row in rows:
        kind, text = row.rendered_payload()
        items.append({"row": row, "kind": kind, "text": text})
    return items


@tenant_view()
def device_retained(request: HttpRequest, tenant: Tenant, name: str) -> HttpResponse:
    device = get_object_or_404(Device, tenant=tenant, name=name)
    rows = RetainedMessage.objects.filter(tenant=tenant, publisher=device).order_by("topic")
    return render(request, "frontend/device_retained.html", {
        "tenant": tenant, "device": device, "items": _with_rendering(rows), "section": "devices",
    })


def build_topic_tree(topics: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Nest 'a/b/c' topics into levels; each node counts the retained topics under it."""
    root: dict[str, Any] = {"children": {}, "count": 0}
    for topic, size in topics:
        node = root
        node["count"] += 1
        for level in topic.split("/"):
            node = node["children"].setdefault(level, {"children": {}, "count": 0, "topic": None})
            node["count"] += 1
        node["topic"] = topic
        node["size"] = size

    def flatten(children: dict[str, Any], depth: int, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for level in sorted(children):
            node = children[level]
            path = f"{prefix}/{level}" if depth else level
            out.append({"level": level or "(empty)", "depth": depth, "count": node["count"],
                        "topic": node["topic"], "size": node.get("size"), "path": path})
            out.extend(flatten(node["children"], depth + 1, path))
        return out

    return flatten(root["children"], 0, "")


@tenant_view()
def topic_tree(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    rows = RetainedMessage.objects.filter(tenant=tenant).order_by("topic")
    prefix = request.GET.get("prefix", "")
    if prefix:
        rows = rows.filter(topic__startswith=prefix)
    sizes = [(r.topic, len(r.payload)) for r in rows.only("topic", "payload")[:5000]]
    return render(request, "frontend/topic_tree.html", {
        "tenant": tenant, "nodes": build_topic_tree(sizes), "prefix": prefix, "total": len(sizes),
        "section": "retained",
    })


@tenant_view()
def retained_detail(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    topic = request.GET.get("topic", "")
    row = get_object_or_404(RetainedMessage, tenant=tenant, topic=topic)
    return render(request, "frontend/retained_detail.html", {
        "tenant": tenant, "items": _with_rendering([row]), "topic": topic, "section": "retained",
    })


# A viewer is answered 404 here, as before the portal had a layout (tests rely on it).
@require_POST
@tenant_view(Role.OPERATOR, hide=True)
def clear_retained_view(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    topic = request.POST.get("topic", "")
    if not topic:
        messages.error(request, "No topic given.")
    else:
        clear_retained(tenant, topic, actor=Actor.for_user(request.user))
        messages.success(request, f"Asked the broker to clear the retained message of {topic}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("frontend:topic-tree", args=[tenant.slug])
    return HttpResponseRedirect(target)
