"""The rule admin: edits go through the services (audit + outbox), plus explain and impact pages."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from devices.audit import Actor

from . import services
from .forms import ExplainForm, RuleImpactForm
from .models import AclRule, AclRuleSet


@admin.register(AclRule)
class AclRuleAdmin(admin.ModelAdmin[AclRule]):
    list_display = ["id", "tenant", "effect", "action", "topic_filter", "subject_label", "max_qos",
                    "allow_retain", "enabled", "updated"]
    list_filter = ["tenant", "effect", "action", "subject_kind", "enabled"]
    search_fields = ["topic_filter", "description", "subject_role", "subject_service",
                     "subject_device__name", "subject_group__name"]
    list_select_related = ["tenant", "subject_group", "subject_device"]
    raw_id_fields = ["subject_device"]
    readonly_fields = ["created", "updated"]

    def save_model(self, request: HttpRequest, obj: AclRule, form: Any, change: bool) -> None:
        services.save_rule(obj, actor=Actor.for_user(request.user))

    def delete_model(self, request: HttpRequest, obj: AclRule) -> None:
        services.delete_rule(obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        actor = Actor.for_user(request.user)
        for rule in queryset.select_related("tenant", "subject_group", "subject_device"):
            services.delete_rule(rule, actor=actor)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path("explain/", self.admin_site.admin_view(self.explain_view), name="acl_aclrule_explain"),
            path("impact/", self.admin_site.admin_view(self.impact_view), name="acl_aclrule_impact"),
        ]
        return own + super().get_urls()

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **extra}

    def explain_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ExplainForm(request.GET or None)
        explanation = None
        if form.is_valid():
            data = form.cleaned_data
            try:
                explanation = services.explain_for(
                    data["tenant"], data["action"], data["topic"], data["qos"], data["retain"],
                    device=data["device"] or None, role=data["role"] or None,
                    service=data["service"] or None,
                )
            except ValidationError as exc:
                form.add_error(None, exc)
        return TemplateResponse(request, "admin/acl/aclrule/explain.html",
                                self._context(request, "Explain an ACL decision", form=form,
                                              explanation=explanation))

    def impact_view(self, request: HttpRequest) -> HttpResponse:
        """Preview a new or edited rule (POSTed from the rule form) or a deletion (?rule=ID&delete=1)."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        rule_id = request.GET.get("rule") or None
        existing = get_object_or_404(AclRule, pk=rule_id) if rule_id else None
        report, deleting = None, bool(existing and request.GET.get("delete"))
        if request.method == "POST":
            form = RuleImpactForm(request.POST, instance=existing)
            if form.is_valid():
                report = services.preview_impact(form.instance.tenant, proposed=form.instance)
        else:
            form = RuleImpactForm(instance=existing)
            if deleting and existing is not None:
                report = services.preview_impact(existing.tenant, deleting=existing)
        version = None
        tenant = existing.tenant if existing else (form.instance.tenant if form.instance.tenant_id else None)
        if tenant is not None:
            version = AclRuleSet.objects.filter(tenant=tenant).values_list("version", flat=True).first()
        return TemplateResponse(request, "admin/acl/aclrule/impact.html", self._context(
            request, "Preview the impact of a rule change", form=form, report=report, rule=existing,
            deleting=deleting, rules_version=version, shown=report.lines()[:500] if report else [],
        ))
