"""Portal pages: the retained state of devices and of a tenant's topic tree."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from broker.integration.models import RetainedMessage
from broker.integration.services import clear_retained
from devices.audit import Actor
from devices.models import Device, Membership, Role, Tenant


def _tenant_for(request: HttpRequest, slug: str, role: str = Role.VIEWER) -> Tenant:
    """The tenant if the user holds at least `role` in it; 404 otherwise (no existence leak)."""
    tenant = get_object_or_404(Tenant, slug=slug)
    if request.user.is_superuser:
        return tenant
    membership = Membership.objects.filter(user=request.user, tenant=tenant).first()
    if membership is None or not membership.has_role(role):
        raise Http404("No such tenant")
    return tenant


def _with_rendering(rows: Any) -> list[dict[str, Any]]:
    items = []
    for row in rows:
        kind, text = row.rendered_payload()
        items.append({"row": row, "kind": kind, "text": text})
    return items


@login_required
def device_retained(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    tenant = _tenant_for(request, slug)
    device = get_object_or_404(Device, tenant=tenant, name=name)
    rows = RetainedMessage.objects.filter(tenant=tenant, publisher=device).order_by("topic")
    return render(request, "frontend/device_retained.html", {
        "tenant": tenant, "device": device, "items": _with_rendering(rows),
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


@login_required
def topic_tree(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = _tenant_for(request, slug)
    rows = RetainedMessage.objects.filter(tenant=tenant).order_by("topic")
    prefix = request.GET.get("prefix", "")
    if prefix:
        rows = rows.filter(topic__startswith=prefix)
    sizes = [(r.topic, len(r.payload)) for r in rows.only("topic", "payload")[:5000]]
    return render(request, "frontend/topic_tree.html", {
        "tenant": tenant, "nodes": build_topic_tree(sizes), "prefix": prefix, "total": len(sizes),
    })


@login_required
def retained_detail(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = _tenant_for(request, slug)
    topic = request.GET.get("topic", "")
    row = get_object_or_404(RetainedMessage, tenant=tenant, topic=topic)
    return render(request, "frontend/retained_detail.html", {
        "tenant": tenant, "items": _with_rendering([row]),
    })


@login_required
@require_POST
def clear_retained_view(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = _tenant_for(request, slug, role=Role.OPERATOR)
    topic = request.POST.get("topic", "")
    if not topic:
        messages.error(request, "No topic given.")
    else:
        clear_retained(tenant, topic, actor=Actor.for_user(request.user))
        messages.success(request, f"Asked the broker to clear the retained message of {topic}.")
    return HttpResponseRedirect(request.POST.get("next") or reverse("frontend:topic-tree", args=[slug]))
