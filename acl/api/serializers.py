"""Serializers of the ACL API: rules as shown and as accepted, explain and impact.

They check types and sizes only. What makes a rule valid (the subject fits its kind, the
filter template parses, the group is the tenant's) is `AclRule.clean()`, run by the services;
its errors come back keyed by the same field names as here.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from devices.models import Device, DeviceGroup, Role, Tenant
from roost.api.errors import bad_request

from ..explain import EXPLAIN_ACTIONS
from ..models import AclRule, Action, Effect, RuleRole, SubjectKind

SUBJECT_FIELDS = ("subject_group", "subject_device", "subject_role", "subject_service")
MAX_TOPIC_CHARS = 65535


def _nullable_enum(values: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": values, "nullable": True}


class AclRuleSerializer(serializers.ModelSerializer[AclRule]):
    subject_group = serializers.SerializerMethodField(help_text="The group's name (subject_kind `group`).")
    subject_device = serializers.SerializerMethodField(help_text="The device's name (subject_kind `device`).")
    subject_role = serializers.SerializerMethodField(help_text="The portal role (subject_kind `role`); higher "
                                                               "roles get the rule too.")
    subject_service = serializers.SerializerMethodField(help_text="The service credential: an API key's name "
                                                                  "(subject_kind `service`).")
    subject = serializers.CharField(source="subject_label", read_only=True,
                                    help_text="Who the rule is for, in words.")

    class Meta:
        model = AclRule
        fields = ["id", "subject_kind", "subject_group", "subject_device", "subject_role", "subject_service",
                  "subject", "action", "topic_filter", "effect", "max_qos", "allow_retain", "enabled",
                  "description", "created", "updated"]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "nullable": True})
    def get_subject_group(self, rule: AclRule) -> str | None:
        return rule.subject_group.name if rule.subject_group is not None else None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_subject_device(self, rule: AclRule) -> str | None:
        return rule.subject_device.name if rule.subject_device is not None else None

    @extend_schema_field(_nullable_enum(list(RuleRole.values)))
    def get_subject_role(self, rule: AclRule) -> str | None:
        return rule.subject_role or None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_subject_service(self, rule: AclRule) -> str | None:
        return rule.subject_service or None


class AclRuleWriteSerializer(serializers.Serializer[Any]):
    subject_kind = serializers.ChoiceField(
        choices=SubjectKind.choices,
        help_text="Who the rule is for. Send the one subject field of that kind (none for `all_devices`); "
                  "changing the kind clears the subject fields not sent.")
    subject_group = serializers.CharField(max_length=128, required=False, allow_null=True, allow_blank=True,
                                          help_text="A group of the tenant, by name; nested groups included.")
    subject_device = serializers.CharField(max_length=128, required=False, allow_null=True, allow_blank=True,
                                           help_text="A device of the tenant, by name.")
    subject_role = serializers.ChoiceField(choices=RuleRole.choices, required=False, allow_null=True,
                                           allow_blank=True, help_text="A portal role; higher roles get the "
                                                                       "rule too.")
    subject_service = serializers.CharField(max_length=128, required=False, allow_null=True, allow_blank=True,
                                            help_text="A service credential: the name of an API key whose "
                                                      "clients connect over MQTT.")
    action = serializers.ChoiceField(choices=Action.choices)
    topic_filter = serializers.CharField(
        max_length=1024, trim_whitespace=False,
        help_text="An MQTT topic filter; a whole level may be {device}, {tenant}, {group} or {attr:KEY}.")
    effect = serializers.ChoiceField(choices=Effect.choices, required=False,
                                     help_text="`allow` (the default) or `deny`; a matching deny always wins.")
    max_qos = serializers.IntegerField(min_value=0, max_value=2, required=False, allow_null=True,
                                       help_text="The highest QoS this rule allows; null for any.")
    allow_retain = serializers.BooleanField(required=False, help_text="Whether retained publishes are allowed "
                                                                      "(default true).")
    enabled = serializers.BooleanField(required=False, help_text="A disabled rule never applies (default true).")
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


def rule_fields(tenant: Tenant, data: dict[str, Any]) -> dict[str, Any]:
    """Validated input as model field values: subjects by name looked up in `tenant`.

    Sending `subject_kind` replaces the whole subject, so the subject fields not sent are
    cleared rather than left over from the kind the rule had before.
    """
    fields = dict(data)
    if "subject_kind" in fields:
        for name in SUBJECT_FIELDS:
            fields.setdefault(name, None)
    if "subject_group" in fields:
        fields["subject_group"] = _named(DeviceGroup, tenant, fields["subject_group"], "subject_group", "group")
    if "subject_device" in fields:
        fields["subject_device"] = _named(Device, tenant, fields["subject_device"], "subject_device", "device")
    for name in ("subject_role", "subject_service"):
        if name in fields and fields[name] is None:
            fields[name] = ""
    return fields


def _named(model: Any, tenant: Tenant, name: str | None, field: str, what: str) -> Any:
    if not name:
        return None
    found = model.objects.filter(tenant=tenant, name=name).first()
    if found is None:
        raise bad_request(f"No {what} {name!r} in tenant {tenant.slug}.", code=f"unknown_{what}", field=field)
    return found


# Explain -------------------------------------------------------------------------------------


class ExplainSubjectSerializer(serializers.Serializer[Any]):
    device = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                   help_text="A device of the tenant, by name.")
    role = serializers.ChoiceField(choices=Role.choices, required=False, allow_blank=True,
                                   help_text="A portal user of this role (in a browser, through the bridge).")
    service = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                    help_text="A service client: the name of its API key.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        chosen = {name: value for name, value in attrs.items() if value}
        if len(chosen) != 1:
            raise serializers.ValidationError("Give exactly one of device, role or service.", code="invalid_subject")
        return chosen


class ExplainRequestSerializer(serializers.Serializer[Any]):
    subject = ExplainSubjectSerializer(help_text="Who asks: exactly one of `device`, `role` or `service`.")
    action = serializers.ChoiceField(
        choices=[(a, a) for a in EXPLAIN_ACTIONS],
        help_text="`publish`, `subscribe` (the topic is a filter), `will` (a will judged at CONNECT) or "
                  "`deliver` (a message on a partially granted subscription).")
    topic = serializers.CharField(max_length=MAX_TOPIC_CHARS, trim_whitespace=False,
                                  help_text="A topic name, or a topic filter for `subscribe`, as the client sends "
                                            "it (inside the tenant).")
    qos = serializers.IntegerField(min_value=0, max_value=2, default=0, help_text="The QoS asked for.")
    retain = serializers.BooleanField(default=False, help_text="A retained publish (publish and will).")


class SkippedRuleSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    why = serializers.CharField(help_text="Why the rule cannot apply to this subject.")


class ExplanationSerializer(serializers.Serializer[Any]):
    principal = serializers.CharField(help_text="Who was judged, e.g. `device sensor-1` or `role viewer`.")
    action = serializers.ChoiceField(choices=[(a, a) for a in EXPLAIN_ACTIONS])
    target = serializers.CharField(help_text="The topic or filter judged.")
    qos = serializers.IntegerField()
    retain = serializers.BooleanField()
    outcome = serializers.ChoiceField(choices=[(o, o) for o in ("allowed", "denied", "granted", "partial",
                                                                  "refused")],
                                      help_text="publish/will/deliver: allowed or denied; subscribe: granted, "
                                                "partial (deliveries checked against deny rules) or refused.")
    allowed = serializers.BooleanField(help_text="Whether the broker lets it through.")
    code = serializers.ChoiceField(choices=[(c, c) for c in ("matched", "no_allow", "deny_rule", "qos_above_max",
                                                               "retain_not_allowed", "overlaps_deny", "invalid")],
                                   help_text="Why, for programs.")
    reason = serializers.CharField(help_text="Why, for people.")
    granted_qos = serializers.IntegerField(allow_null=True, help_text="subscribe: the QoS granted.")
    deciding_rules = serializers.ListField(child=serializers.IntegerField(),
                                           help_text="Ids of the rules that made the decision.")
    considered_rules = serializers.ListField(child=serializers.IntegerField(),
                                             help_text="Ids of every rule written for this subject.")
    skipped_rules = SkippedRuleSerializer(many=True, help_text="Rules for this subject that cannot apply to it.")
    notes = serializers.ListField(child=serializers.CharField())
    rules_version = serializers.IntegerField(help_text="The tenant's rules version the decision was made with.")
    lines = serializers.ListField(child=serializers.CharField(), help_text="The explanation as sentences.")


# Impact --------------------------------------------------------------------------------------


class ImpactRequestSerializer(AclRuleWriteSerializer):
    rule_id = serializers.IntegerField(min_value=1, required=False,
                                       help_text="Preview an edit of this rule: the fields sent replace its own.")
    delete = serializers.IntegerField(min_value=1, required=False,
                                      help_text="Preview deleting this rule (send nothing else).")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A draft may be partial (an edit of `rule_id`); a new one's required fields are checked below.
        for field in self.fields.values():
            field.required = False

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "delete" in attrs:
            extra = sorted(set(attrs) - {"delete"})
            if extra:
                raise serializers.ValidationError({extra[0]: "Send `delete` alone to preview a deletion."})
            return attrs
        if "rule_id" not in attrs:
            missing = {name: "This field is required for a new rule." for name in ("subject_kind", "action",
                                                                                  "topic_filter")
                       if name not in attrs}
            if missing:
                raise serializers.ValidationError(missing, code="required")
        return attrs


class RightChangeSerializer(serializers.Serializer[Any]):
    principal = serializers.CharField(help_text="e.g. `device sensor-1`, `role viewer`, `service ingest`.")
    action = serializers.ChoiceField(choices=[("publish", "publish"), ("subscribe", "subscribe")])
    target = serializers.CharField(help_text="A sample topic (publish) or filter (subscribe) where it changes.")
    before = serializers.CharField()
    after = serializers.CharField()
    change = serializers.ChoiceField(choices=[(c, c) for c in ("gains", "loses", "changes")])


SUBSCRIPTION_EFFECTS = ("dropped", "becomes partial", "becomes granted", "would now be allowed", "QoS lowered",
                        "QoS raised")


class SubscriptionImpactSerializer(serializers.Serializer[Any]):
    principal = serializers.CharField()
    topic_filter = serializers.CharField(help_text="The live subscription's filter.")
    before = serializers.CharField()
    after = serializers.CharField()
    effect = serializers.ChoiceField(choices=[(e, e) for e in SUBSCRIPTION_EFFECTS],
                                     help_text="`dropped`: the broker would remove the subscription.")
    clients = serializers.ListField(child=serializers.CharField(),
                                    help_text="Client ids of the sessions holding it, as the broker reported them.")


class ImpactSerializer(serializers.Serializer[Any]):
    live = serializers.ChoiceField(
        choices=[("broker", "broker"), ("unavailable", "unavailable")],
        help_text="`broker`: live sessions were read from the running broker and checked. `unavailable`: the "
                  "broker could not be asked (see `live_error`); `changes` still holds the analysis of rights "
                  "from the database, `subscriptions` is empty.")
    live_error = serializers.CharField(allow_null=True, help_text="Why the broker could not be asked.")
    live_sessions = serializers.IntegerField(allow_null=True, help_text="Sessions the broker holds in this "
                                                                        "tenant (connected or not).")
    live_subscriptions = serializers.IntegerField(allow_null=True, help_text="Subscriptions among them that "
                                                                             "were checked.")
    changes = RightChangeSerializer(many=True, help_text="Rights gained, lost or changed (sampled topics).")
    subscriptions = SubscriptionImpactSerializer(many=True, help_text="Live subscriptions whose decision changes.")
    principals_affected = serializers.IntegerField()
    principals_checked = serializers.IntegerField()
    samples_checked = serializers.IntegerField()
    truncated = serializers.BooleanField(help_text="True when only some affected principals were compared.")
    seconds = serializers.FloatField()
    lines = serializers.ListField(child=serializers.CharField(), help_text="The report as sentences.")
