"""Topic ACL rules as stored; the broker works on their pure form, `acl.rules.RuleSpec`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from devices.models import Device, DeviceGroup, Tenant

from . import rules as pure
from .substitution import TemplateError, parse_template


class SubjectKind(models.TextChoices):
    ALL_DEVICES = pure.SUBJECT_ALL_DEVICES, "All devices of the tenant"
    GROUP = pure.SUBJECT_GROUP, "A device group and its nested groups"
    DEVICE = pure.SUBJECT_DEVICE, "One device"
    ROLE = pure.SUBJECT_ROLE, "A portal role (and every higher role)"
    SERVICE = pure.SUBJECT_SERVICE, "A service credential"


class Action(models.TextChoices):
    PUBLISH = pure.PUBLISH, "Publish"
    SUBSCRIBE = pure.SUBSCRIBE, "Subscribe"
    BOTH = pure.BOTH, "Publish and subscribe"


class Effect(models.TextChoices):
    ALLOW = pure.ALLOW, "Allow"
    DENY = pure.DENY, "Deny"


class RuleRole(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


QOS_CHOICES = [(0, "0"), (1, "1"), (2, "2")]


class AclRule(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="acl_rules")
    subject_kind = models.CharField(max_length=16, choices=SubjectKind.choices)
    # A group referenced by a rule cannot be deleted until the rule is changed or removed.
    subject_group = models.ForeignKey(
        DeviceGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="acl_rules")
    subject_device = models.ForeignKey(
        Device, null=True, blank=True, on_delete=models.CASCADE, related_name="acl_rules")
    subject_role = models.CharField(max_length=16, choices=RuleRole.choices, blank=True)
    subject_service = models.CharField(
        max_length=128, blank=True, help_text="The id of the tenant's service credential.")
    action = models.CharField(max_length=16, choices=Action.choices)
    topic_filter = models.CharField(
        max_length=1024,
        help_text="An MQTT filter; whole levels may be {device}, {tenant}, {group} or {attr:KEY}.",
    )
    effect = models.CharField(max_length=8, choices=Effect.choices, default=Effect.ALLOW)
    max_qos = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=QOS_CHOICES, help_text="Highest QoS this rule allows; empty for any.")
    allow_retain = models.BooleanField(default=True, help_text="Whether retained publishes are allowed.")
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "id"]
        indexes = [models.Index(fields=["tenant", "enabled"])]
        verbose_name = "ACL rule"

    def __str__(self) -> str:
        return f"#{self.pk} {self.effect} {self.action} {self.topic_filter} for {self.subject_label}"

    @property
    def subject_label(self) -> str:
        kind = self.subject_kind
        if kind == SubjectKind.ALL_DEVICES:
            return "all devices"
        if kind == SubjectKind.GROUP:
            return f"group {self.subject_group.name if self.subject_group is not None else '?'}"
        if kind == SubjectKind.DEVICE:
            return f"device {self.subject_device.name if self.subject_device is not None else '?'}"
        if kind == SubjectKind.ROLE:
            return f"role {self.subject_role}"
        return f"service {self.subject_service}"

    def subject_value(self) -> str:
        kind = self.subject_kind
        if kind == SubjectKind.GROUP:
            return self.subject_group.name if self.subject_group is not None else ""
        if kind == SubjectKind.DEVICE:
            return self.subject_device.name if self.subject_device is not None else ""
        if kind == SubjectKind.ROLE:
            return self.subject_role
        if kind == SubjectKind.SERVICE:
            return self.subject_service
        return ""

    def clean(self) -> None:
        errors: dict[str, str] = {}
        kind = self.subject_kind
        field_of_kind: dict[str, str] = {
            SubjectKind.GROUP: "subject_group", SubjectKind.DEVICE: "subject_device",
            SubjectKind.ROLE: "subject_role", SubjectKind.SERVICE: "subject_service",
        }
        wanted = field_of_kind.get(kind)
        for name in ("subject_group", "subject_device", "subject_role", "subject_service"):
            value = getattr(self, f"{name}_id" if name in ("subject_group", "subject_device") else name)
            if name == wanted and not value:
                errors[name] = f"A rule for {SubjectKind(kind).label.lower()} needs this field."
            elif name != wanted and value:
                errors[name] = "Leave this empty for the chosen subject."
        if self.subject_group is not None and self.tenant_id and self.subject_group.tenant_id != self.tenant_id:
            errors["subject_group"] = "The group belongs to another tenant."
        if self.subject_device is not None and self.tenant_id and self.subject_device.tenant_id != self.tenant_id:
            errors["subject_device"] = "The device belongs to another tenant."
        try:
            parse_template(self.topic_filter)
        except TemplateError as exc:
            errors["topic_filter"] = str(exc)
        if errors:
            raise ValidationError(errors)

    def to_spec(self, tenant_slug: str | None = None) -> pure.RuleSpec:
        return pure.RuleSpec(
            id=self.pk or 0, tenant=tenant_slug or self.tenant.slug, subject_kind=self.subject_kind,
            subject_value=self.subject_value(), action=self.action, topic_filter=self.topic_filter,
            effect=self.effect, max_qos=self.max_qos, allow_retain=self.allow_retain,
            enabled=self.enabled,
        )

    def snapshot(self) -> dict[str, Any]:
        """The rule's fields as recorded in audit and change events."""
        spec = self.to_spec().as_dict()
        spec["description"] = self.description
        return spec


class AclRuleSet(models.Model):
    """Per-tenant version of the rules: bumped in the transaction of every rule change.

    The broker compares it with the version its compiled matchers were built from.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="acl_rule_set")
    version = models.PositiveBigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.tenant_id} rules v{self.version}"
