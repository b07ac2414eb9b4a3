"""A tenant's audit log: filtered, paginated, newest first, and the same rows as CSV. Admin role.

The export streams: a tenant's trail can be long, and neither the web process's memory nor
the response time should grow with it."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from devices.models import Role, Tenant

from ..access import tenant_view
from ..filters import AuditFilter
from .common import htmx_partial, paginate

CSV_COLUMNS = ["time", "actor_kind", "actor", "action", "target_type", "target_id", "target", "before", "after"]
# A spreadsheet runs a cell starting with these as a formula: an actor or target name must not.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@tenant_view(Role.ADMIN)
def audit_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    events = AuditFilter(request.GET or None, tenant)
    page = paginate(request, events.clean_qs().select_related("actor_user"))
    template = "frontend/audit/_table.html" if htmx_partial(request) else "frontend/audit/list.html"
    return render(request, template, {"tenant": tenant, "section": "audit", "filter": events, "page": page})


class _Echo:
    """csv.writer's file: hands each written line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _rows(events: Any) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    # Plain tuples, not model instances: about twice as fast for a long trail.
    rows = events.values_list("created", "actor_kind", "actor_label", "action", "target_type", "target_id",
                              "target_repr", "before", "after")
    for created, kind, actor, action, target_type, target_id, target, before, after in rows.iterator(chunk_size=2000):
        yield writer.writerow([
            created.isoformat(), kind, _cell(actor), action, target_type, _cell(target_id), _cell(target),
            _json(before), _json(after),
        ])


@tenant_view(Role.ADMIN)
def audit_export(request: HttpRequest, tenant: Tenant) -> HttpResponseBase:
    """The rows the same filters select, every page of them, as CSV."""
    events = AuditFilter(request.GET or None, tenant)
    if events.is_bound and not events.is_valid():
        return render(request, "frontend/audit/list.html", {
            "tenant": tenant, "section": "audit", "filter": events, "page": paginate(request, events.clean_qs()),
        }, status=400)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response = StreamingHttpResponse(_rows(events.qs), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{tenant.slug}-{stamp}.csv"'
    return response
