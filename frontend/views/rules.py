"""A tenant's access rules: the list (viewer), the editor with its impact preview and deletion
(admin), and the explain simulator (viewer).

Rules are created, changed and deleted through acl/services.py, as in the API and the admin;
the impact preview is the API's: the draft rule against the saved rules and the live
subscriptions the running broker reports, asked at request time.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from acl.live import preview_live_impact
from acl.models import AclRule, AclRuleSet
from acl.services import create_rule, delete_rule, explain_for, update_rule
from devices.audit import Actor
from devices.models import Device, Role, Tenant

from ..access import tenant_view
from ..filters import RuleFilter
from ..forms import ExplainForm, RuleForm, add_service_errors
from .common import htmx_partial, paginate


def _rules(tenant: Tenant) -> Any:
    return AclRule.objects.filter(tenant=tenant).select_related("subject_group", "subject_device").order_by("id")


def _rule(tenant: Tenant, pk: int) -> AclRule:
    return get_object_or_404(AclRule.objects.select_related("tenant", "subject_group", "subject_device"),
                             tenant=tenant, pk=pk)


def _version(tenant: Tenant) -> int:
    return AclRuleSet.objects.filter(tenant=tenant).values_list("version", flat=True).first() or 0


@tenant_view(Role.VIEWER)
def rule_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    rules = RuleFilter(request.GET or None, tenant)
    template = "frontend/rules/_table.html" if htmx_partial(request) else "frontend/rules/list.html"
    return render(request, template, {
        "tenant": tenant, "section": "rules", "filter": rules, "page": paginate(request, rules.qs),
        "rules_version": _version(tenant),
    })


def _impact(tenant: Tenant, *, proposed: AclRule | None = None, deleting: AclRule | None = None) -> dict[str, Any]:
    """The preview and how the live sessions were had; `proposed` is validated (ValidationError)."""
    live = preview_live_impact(tenant, proposed=proposed, deleting=deleting)
    report = live.report
    return {
        "report": report, "live_error": live.live_error,
        "live_sessions": None if live.sessions is None else len(live.sessions),
        "live_subscriptions": live.subscriptions_checked,
        "subscriptions": [(s, live.clients.get((s.principal, s.topic_filter), [])) for s in report.subscriptions],
        "changes": report.changes[:500], "rules_version": _version(tenant),
    }


def _editor(request: HttpRequest, tenant: Tenant, rule: AclRule | None) -> HttpResponse:
    """GET shows the form; POST with `preview` shows the impact of the draft, otherwise saves it."""
    form = RuleForm(tenant, request.POST or None, rule=rule)
    context: dict[str, Any] = {"tenant": tenant, "section": "rules", "form": form, "rule": rule}
    if request.method == "POST" and form.is_valid():
        fields = form.rule_fields()
        if "preview" in request.POST:
            draft = _rule(tenant, rule.pk) if rule is not None else AclRule(tenant=tenant)
            for name, value in fields.items():
                setattr(draft, name, value)
            try:
                context["impact"] = _impact(tenant, proposed=draft)
            except ValidationError as exc:
                add_service_errors(form, exc)
        else:
            actor = Actor.for_user(request.user)
            try:
                if rule is None:
                    saved = create_rule(tenant, actor=actor, **fields)
                else:
                    saved = update_rule(rule, actor=actor, **fields)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Saved rule {saved.pk}; the broker applies it at once.")
                return redirect("frontend:rules", tenant.slug)
    return render(request, "frontend/rules/edit.html", context)


@tenant_view(Role.ADMIN)
def rule_create(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    return _editor(request, tenant, None)


@tenant_view(Role.ADMIN)
def rule_edit(request: HttpRequest, tenant: Tenant, pk: int) -> HttpResponse:
    return _editor(request, tenant, _rule(tenant, pk))


@tenant_view(Role.ADMIN)
def rule_delete(request: HttpRequest, tenant: Tenant, pk: int) -> HttpResponse:
    """GET shows what deleting the rule would change; POST deletes it."""
    rule = _rule(tenant, pk)
    if request.method == "POST":
        delete_rule(rule, actor=Actor.for_user(request.user))
        messages.success(request, f"Deleted rule {pk}.")
        return redirect("frontend:rules", tenant.slug)
    return render(request, "frontend/rules/delete.html", {
        "tenant": tenant, "section": "rules", "rule": rule, "impact": _impact(tenant, deleting=rule),
    })


@tenant_view(Role.VIEWER)
def rule_explain(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """"May device X subscribe to T?" decided as the broker would, with the rules that decided it."""
    form = ExplainForm(request.GET or None)
    explanation = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            explanation = explain_for(tenant, data["action"], data["topic"], data["qos"], data["retain"],
                                      device=data["device"] or None, role=data["role"] or None,
                                      service=data["service"] or None)
        except ValidationError as exc:
            add_service_errors(form, exc)
    rules = {}
    if explanation is not None:
        ids = {line.spec.id for line in (*explanation.deciding, *explanation.considered)}
        rules = {r.pk: r for r in _rules(tenant).filter(pk__in=ids)}
    return render(request, "frontend/rules/explain.html", {
        "tenant": tenant, "section": "rules", "form": form, "explanation": explanation,
        "deciding": [(line, rules.get(line.spec.id)) for line in explanation.deciding] if explanation else [],
        "device_names": Device.objects.filter(tenant=tenant).order_by("name").values_list("name", flat=True)[:200],
    })
