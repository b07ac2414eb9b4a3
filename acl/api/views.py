"""`acl-rules/`, `acl/explain` and `acl/impact`. Viewers read rules and explain decisions;
admins change rules and preview the impact of a change.

Every change goes through acl/services.py (validation, audit, rules version, outbox), the
same functions the admin and the CLI use; the running broker applies it from the outbox and
re-checks live subscriptions at once.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from broker.integration.inspect_client import LiveSession
from devices.models import Device, Role, Tenant
from roost.api.errors import ERROR_SCHEMA, bad_request, not_found
from roost.api.views import TenantScopedMixin

from ..impact import ImpactReport
from ..live import preview_live_impact
from ..models import AclRule
from ..services import create_rule, delete_rule, explain_for, update_rule
from .filters import AclRuleFilter
from .serializers import (
    AclRuleSerializer,
    AclRuleWriteSerializer,
    ExplainRequestSerializer,
    ExplanationSerializer,
    ImpactRequestSerializer,
    ImpactSerializer,
    rule_fields,
)

ID_PARAMETER = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The rule's id.")
MAX_RULE_ID = 2**63 - 1

_RULE_EXAMPLE = {
    "id": 42, "subject_kind": "group", "subject_group": "line-3", "subject_device": None, "subject_role": None,
    "subject_service": None, "subject": "group line-3", "action": "publish",
    "topic_filter": "factory/line-3/{device}/telemetry", "effect": "allow", "max_qos": 1, "allow_retain": False,
    "enabled": True, "description": "Line 3 sensors report telemetry.",
    "created": "2025-05-01T09:30:12.123456Z", "updated": "2025-05-01T09:30:12.123456Z",
}
_FIELD_ERRORS = OpenApiResponse(ERROR_SCHEMA, description="A field is invalid; `field` names it (e.g. `topic_filter` "
                                "for a filter MQTT does not allow, `subject_group` for a group the tenant does not "
                                "have or a subject field that does not fit `subject_kind`).")


def rule_in(tenant: Tenant, rule_id: Any, field: str | None = None) -> AclRule:
    """The tenant's rule `rule_id`: 404 in the path, 400 naming `field` in a body."""
    try:
        wanted = int(rule_id)
    except (TypeError, ValueError):
        wanted = 0
    rule = None
    if 0 < wanted <= MAX_RULE_ID:
        rule = (AclRule.objects.filter(tenant=tenant, pk=wanted)
                .select_related("tenant", "subject_group", "subject_device").first())
    if rule is None:
        message = f"No ACL rule {rule_id} in tenant {tenant.slug}."
        if field is not None:
            raise bad_request(message, code="unknown_rule", field=field)
        raise not_found(message, code="rule_not_found")
    return rule


@extend_schema_view(
    list=extend_schema(summary="List ACL rules", description="The tenant's topic rules, by id. A decision "
                       "takes every enabled rule into account: a matching deny wins over any allow.",
                       responses={200: AclRuleSerializer(many=True)}),
    retrieve=extend_schema(summary="Show an ACL rule", parameters=[ID_PARAMETER], responses={200: AclRuleSerializer},
                           examples=[OpenApiExample("A group rule", value=_RULE_EXAMPLE, response_only=True)]),
    destroy=extend_schema(summary="Delete an ACL rule", parameters=[ID_PARAMETER],
                          description="The running broker drops, at once, the live subscriptions only this "
                                      "rule allowed. Preview with `POST acl/impact {\"delete\": ID}`.",
                          responses={204: None}),
)
class AclRuleViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     viewsets.GenericViewSet[AclRule]):
    serializer_class = AclRuleSerializer
    queryset = AclRule.objects.none()  # the model, for the schema; requests use get_queryset
    lookup_field = "id"
    lookup_value_regex = r"[0-9]+"
    filterset_class = AclRuleFilter
    ordering = ("id",)
    ordering_fields = ("id",)
    read_role = Role.VIEWER
    write_role = Role.ADMIN

    def get_queryset(self) -> QuerySet[AclRule]:
        return AclRule.objects.filter(tenant=self.tenant).select_related("tenant", "subject_group", "subject_device")

    def get_object(self) -> AclRule:
        return rule_in(self.tenant, self.kwargs["id"])

    def _shown(self, rule: AclRule, code: int = 200, **headers: str) -> Response:
        return Response(AclRuleSerializer(rule_in(self.tenant, rule.pk)).data, status=code, headers=headers or None)

    @extend_schema(
        summary="Create an ACL rule", request=AclRuleWriteSerializer, responses={201: AclRuleSerializer,
                                                                                 400: _FIELD_ERRORS},
        description="Takes effect in the running broker within about a second. Preview it first with "
                    "`POST acl/impact`.",
        examples=[
            OpenApiExample("Each device in its own tree", request_only=True, value={
                "subject_kind": "all_devices", "action": "both", "topic_filter": "devices/{device}/#"}),
            OpenApiExample("A group publishes telemetry at QoS 1 at most", request_only=True, value={
                "subject_kind": "group", "subject_group": "line-3", "action": "publish",
                "topic_filter": "factory/line-3/{device}/telemetry", "max_qos": 1, "allow_retain": False}),
            OpenApiExample("Deny a service the command topics", request_only=True, value={
                "subject_kind": "service", "subject_service": "ingest", "action": "publish",
                "topic_filter": "devices/+/cmd/#", "effect": "deny"}),
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = AclRuleWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        rule = create_rule(self.tenant, actor=self.actor, **rule_fields(self.tenant, form.validated_data))
        location = reverse("v1:acl-rule-detail", kwargs={"tenant": self.tenant.slug, "id": rule.pk}, request=request)
        return self._shown(rule, status.HTTP_201_CREATED, Location=location)

    @extend_schema(
        summary="Change an ACL rule", parameters=[ID_PARAMETER], request=AclRuleWriteSerializer(partial=True),
        responses={200: AclRuleSerializer, 400: _FIELD_ERRORS},
        description="Only the fields sent change; sending `subject_kind` replaces the whole subject. Live "
                    "subscriptions the rules no longer allow are dropped at once.",
        examples=[OpenApiExample("Disable", request_only=True, value={"enabled": False}),
                  OpenApiExample("Give it to a device instead", request_only=True,
                                 value={"subject_kind": "device", "subject_device": "sensor-7"})],
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rule = self.get_object()
        form = AclRuleWriteSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        changes = rule_fields(self.tenant, form.validated_data)
        if changes:
            rule = update_rule(rule, actor=self.actor, **changes)
        return self._shown(rule)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        delete_rule(self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AclExplainView(TenantScopedMixin, APIView):
    """Explain a decision with the tenant's committed rules, as the broker makes it."""

    read_role = Role.VIEWER
    write_role = Role.VIEWER  # a POST that changes nothing

    @extend_schema(
        summary="Explain an ACL decision", tags=["acl"], request=ExplainRequestSerializer,
        responses={200: ExplanationSerializer},
        description="What the broker decides for this subject, action and topic, the rules that decided it "
                    "and the rules that could not apply. A malformed topic is explained as the broker refuses "
                    "it (`code: invalid`).",
        examples=[
            OpenApiExample("A device publishes", request_only=True, value={
                "subject": {"device": "sensor-1"}, "action": "publish", "topic": "devices/sensor-1/temp",
                "qos": 1, "retain": False}),
            OpenApiExample("A viewer subscribes", request_only=True, value={
                "subject": {"role": "viewer"}, "action": "subscribe", "topic": "devices/+/temp"}),
            OpenApiExample("Allowed", response_only=True, value={
                "principal": "device sensor-1", "action": "publish", "target": "devices/sensor-1/temp", "qos": 1,
                "retain": False, "outcome": "allowed", "allowed": True, "code": "matched",
                "reason": "allowed by rule 1", "granted_qos": None, "deciding_rules": [1],
                "considered_rules": [1, 6], "skipped_rules": [], "notes": [], "rules_version": 7,
                "lines": ["device sensor-1 publish 'devices/sensor-1/temp': allowed — allowed by rule 1",
                          "deciding rule 1: allow both devices/sensor-1/# (from devices/{device}/#)"]}),
        ],
    )
    def post(self, request: Request, tenant: str) -> Response:
        form = ExplainRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        subject = data["subject"]
        device = None
        if "device" in subject:
            device = Device.objects.select_related("tenant").filter(tenant=self.tenant, name=subject["device"]).first()
            if device is None:
                raise bad_request(f"No device {subject['device']!r} in tenant {self.tenant.slug}.",
                                  code="unknown_device", field="subject.device")
        explanation = explain_for(self.tenant, data["action"], data["topic"], data["qos"], data["retain"],
                                  device=device, role=subject.get("role"), service=subject.get("service"))
        return Response(explanation.as_dict())


class AclImpactView(TenantScopedMixin, APIView):
    """Preview a rule change against the rules in the database and the sessions in the broker."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(
        summary="Preview the impact of an ACL rule change", tags=["acl"], request=ImpactRequestSerializer,
        responses={200: ImpactSerializer, 400: _FIELD_ERRORS},
        description="Send a draft rule (the fields of `POST acl-rules/`), or `rule_id` with the fields to change "
                    "in that rule, or `{\"delete\": ID}`. Nothing is saved. The answer lists the rights that "
                    "principals (devices, roles, services) gain or lose, and the live subscriptions the change "
                    "would drop, narrow or widen: those are asked of the running broker at request time, so a "
                    "subscription made a second ago counts. When the broker cannot be asked, `live` is "
                    "`unavailable` and only the analysis of rights is given.",
        examples=[
            OpenApiExample("A draft deny rule", request_only=True, value={
                "subject_kind": "all_devices", "action": "subscribe", "topic_filter": "devices/+/cmd/#",
                "effect": "deny"}),
            OpenApiExample("Disabling rule 3", request_only=True, value={"rule_id": 3, "enabled": False}),
            OpenApiExample("Deleting rule 3", request_only=True, value={"delete": 3}),
            OpenApiExample("One live subscription dropped", response_only=True, value={
                "live": "broker", "live_error": None, "live_sessions": 1, "live_subscriptions": 1,
                "changes": [{"principal": "device sensor-1", "action": "subscribe",
                             "target": "devices/sensor-1/cmd/#", "before": "granted at QoS 2",
                             "after": "refused (deny rule -1 matches)", "change": "loses"}],
                "subscriptions": [{"principal": "device sensor-1", "topic_filter": "devices/sensor-1/cmd/#",
                                   "before": "granted at QoS 1", "after": "refused (deny rule -1 matches)",
                                   "effect": "dropped", "clients": ["sensor-1"]}],
                "principals_affected": 1, "principals_checked": 1, "samples_checked": 3, "truncated": False,
                "seconds": 0.004, "lines": ["device sensor-1 devices/sensor-1/cmd/#: dropped (granted at QoS 1 → "
                                            "refused (deny rule -1 matches))"]}),
        ],
    )
    def post(self, request: Request, tenant: str) -> Response:
        form = ImpactRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        deleting, proposed = None, None
        if "delete" in data:
            deleting = rule_in(self.tenant, data["delete"], field="delete")
        else:
            rule_id = data.pop("rule_id", None)
            fields = rule_fields(self.tenant, data)
            if rule_id is not None:
                proposed = rule_in(self.tenant, rule_id, field="rule_id")
                for name, value in fields.items():
                    setattr(proposed, name, value)
            else:
                proposed = AclRule(tenant=self.tenant, **fields)
        live = preview_live_impact(self.tenant, proposed=proposed, deleting=deleting)
        return Response(_impact_body(live.report, live.sessions, live.live_error, live.subscriptions_checked,
                                     live.clients))


def _impact_body(report: ImpactReport, sessions: list[LiveSession] | None, live_error: str | None,
                 checked: int, clients: dict[tuple[str, str], list[str]]) -> dict[str, Any]:
    return {
        "live": "unavailable" if sessions is None else "broker",
        "live_error": live_error,
        "live_sessions": None if sessions is None else len(sessions),
        "live_subscriptions": None if sessions is None else checked,
        "changes": [{"principal": c.principal, "action": c.action, "target": c.target, "before": c.before,
                     "after": c.after, "change": c.change} for c in report.changes],
        "subscriptions": [{"principal": s.principal, "topic_filter": s.topic_filter, "before": s.before,
                           "after": s.after, "effect": s.effect,
                           "clients": clients.get((s.principal, s.topic_filter), [])}
                          for s in report.subscriptions],
        "principals_affected": report.principals_affected,
        "principals_checked": report.principals_checked,
        "samples_checked": report.samples_checked,
        "truncated": report.truncated,
        "seconds": round(report.seconds, 6),
        "lines": report.lines(),
    }
