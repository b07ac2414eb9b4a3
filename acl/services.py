"""ACL rule changes, default rules, explain and impact preview for the API, portal and admin.

Every change validates, saves, bumps the tenant's rules version, audits and writes its
outbox row in one transaction, so the broker sees exactly the committed rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from devices.audit import Actor, record_audit
from devices.changes import record_change
from devices.models import Device, Tenant

from . import impact
from .explain import Explanation, explain
from .loading import device_principal, load_tenant_rules, tenant_principals
from .models import AclRule, AclRuleSet
from .rules import Principal

CHANGE_KIND = "acl_rule"
_EDITABLE = {
    "subject_kind", "subject_group", "subject_device", "subject_role", "subject_service", "action",
    "topic_filter", "effect", "max_qos", "allow_retain", "enabled", "description",
}

# Issue #4: what every new tenant starts with; all of it can be edited or removed.
DEFAULT_RULES: list[dict[str, Any]] = [
    {"subject_kind": "all_devices", "action": "both", "topic_filter": "devices/{device}/#",
     "description": "Each device publishes and subscribes under its own topic tree."},
    {"subject_kind": "role", "subject_role": "viewer", "action": "subscribe", "topic_filter": "#",
     "description": "Viewers (and every higher role) may read all of the tenant's topics."},
    {"subject_kind": "role", "subject_role": "operator", "action": "publish", "topic_filter": "#",
     "description": "Operators (and admins) may also publish to the tenant's topics."},
    {"subject_kind": "role", "subject_role": "viewer", "action": "subscribe",
     "topic_filter": "$roost/presence/#", "description": "Viewers may read device presence."},
    {"subject_kind": "role", "subject_role": "viewer", "action": "subscribe",
     "topic_filter": "$roost/events/#", "description": "Viewers may read platform events."},
]


def bump_rules_version(tenant: Tenant) -> int:
    """Advance the tenant's rules version inside the current transaction; return the new one."""
    AclRuleSet.objects.get_or_create(tenant=tenant)
    AclRuleSet.objects.filter(tenant=tenant).update(version=F("version") + 1)
    return int(AclRuleSet.objects.values_list("version", flat=True).get(tenant=tenant))


def _audit(rule: AclRule, op: str, actor: Actor, before: dict[str, Any] | None,
           after: dict[str, Any] | None) -> None:
    verb = {"created": "create", "updated": "update", "deleted": "delete"}[op]
    record_audit(actor, f"acl_rule.{verb}", rule, tenant=rule.tenant, before=before, after=after)


def _announce(rule: AclRule, op: str, after: dict[str, Any] | None, rule_id: int) -> None:
    tenant = rule.tenant
    payload: dict[str, Any] = {"tenant": tenant.slug, "rules_version": bump_rules_version(tenant),
                               "rule_id": rule_id}
    if after is not None:
        payload["rule"] = after
    record_change(CHANGE_KIND, op, rule_id, tenant=tenant, payload=payload)


def save_rule(rule: AclRule, *, actor: Actor | None = None) -> AclRule:
    """Validate and save a new or edited rule instance with its audit and change events."""
    actor = actor or Actor.system()
    rule.full_clean()
    with transaction.atomic():
        before = None
        if rule.pk is not None:
            # Lock only the rule row: PostgreSQL refuses FOR UPDATE across the nullable joins.
            stored = AclRule.objects.select_for_update(of=("self",)).select_related(
                "tenant", "subject_group", "subject_device").filter(pk=rule.pk).first()
            if stored is None:
                raise ValidationError("This rule was deleted meanwhile.")
            if stored.tenant_id != rule.tenant_id:
                raise ValidationError({"tenant": "A rule cannot move to another tenant."})
            before = stored.snapshot()
        op = "updated" if before is not None else "created"
        rule.save()
        after = rule.snapshot()
        _audit(rule, op, actor, before, after)
        _announce(rule, op, after, rule.pk)
    return rule


def create_rule(tenant: Tenant, *, actor: Actor | None = None, **fields: Any) -> AclRule:
    unknown = set(fields) - _EDITABLE
    if unknown:
        raise ValidationError(f"Unknown rule fields: {', '.join(sorted(unknown))}.")
    return save_rule(AclRule(tenant=tenant, **fields), actor=actor)


def update_rule(rule: AclRule, *, actor: Actor | None = None, **changes: Any) -> AclRule:
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise ValidationError(f"These rule fields cannot be changed: {', '.join(sorted(unknown))}.")
    rule = AclRule.objects.select_related("tenant").get(pk=rule.pk)
    for name, value in changes.items():
        setattr(rule, name, value)
    return save_rule(rule, actor=actor)


def delete_rule(rule: AclRule, *, actor: Actor | None = None) -> None:
    actor = actor or Actor.system()
    with transaction.atomic():
        before = rule.snapshot()
        pk = rule.pk
        # Audited while the row still has its id, announced once it is gone.
        _audit(rule, "deleted", actor, before, None)
        rule.delete()
        _announce(rule, "deleted", None, pk)


def forget_device_rules(device: Device, *, actor: Actor | None = None) -> int:
    """Delete the rules written for one device, with their events; call before deleting it.

    Otherwise the database cascade removes them silently and a new device of the same name
    could inherit them in a broker that has not reloaded the tenant.
    """
    count = 0
    with transaction.atomic():
        for rule in AclRule.objects.filter(subject_device=device).select_related("tenant", "subject_device"):
            delete_rule(rule, actor=actor)
            count += 1
    return count


def install_default_rules(tenant: Tenant, *, actor: Actor | None = None) -> list[AclRule]:
    with transaction.atomic():
        return [create_rule(tenant, actor=actor, **fields) for fields in DEFAULT_RULES]


def on_tenant_created(sender: Any, tenant: Tenant, actor: Actor | None = None, **kwargs: Any) -> None:
    install_default_rules(tenant, actor=actor)


def on_device_deleting(sender: Any, device: Device, actor: Actor | None = None, **kwargs: Any) -> None:
    forget_device_rules(device, actor=actor)


def principal_for(
    tenant: Tenant, *, device: Device | str | None = None, role: str | None = None,
    service: str | None = None,
) -> Principal:
    """The principal to explain for: exactly one of a device (or its name), a role, a service."""
    if sum(value is not None and value != "" for value in (device, role, service)) != 1:
        raise ValidationError("Pick exactly one of a device, a role or a service credential.")
    if device:
        if isinstance(device, str):
            found = Device.objects.filter(tenant=tenant, name=device).first()
            if found is None:
                raise ValidationError({"device": f"No device {device!r} in tenant {tenant.slug}."})
            device = found
        if device.tenant_id != tenant.pk:
            raise ValidationError({"device": "The device belongs to another tenant."})
        return device_principal(device)
    if role:
        if role not in ("viewer", "operator", "admin", "owner"):
            raise ValidationError({"role": f"Unknown role {role!r}."})
        return Principal.for_role(tenant.slug, role)
    return Principal.for_service(tenant.slug, str(service))


def explain_for(
    tenant: Tenant, action: str, topic_or_filter: str, qos: int = 0, retain: bool = False, *,
    device: Device | str | None = None, role: str | None = None, service: str | None = None,
) -> Explanation:
    """Explain a decision with the tenant's committed rules, as the broker would make it."""
    principal = principal_for(tenant, device=device, role=role, service=service)
    loaded = load_tenant_rules(tenant)
    return explain(principal, action, topic_or_filter, qos, retain, rules=loaded.rules, version=loaded.version)


def preview_impact(
    tenant: Tenant, *, proposed: AclRule | None = None, deleting: AclRule | None = None,
    live: Iterable[tuple[Principal, str] | tuple[Principal, str, int]] = (),
) -> impact.ImpactReport:
    """What saving `proposed` (new or edited, unsaved) or deleting `deleting` would change."""
    if (proposed is None) == (deleting is None):
        raise ValueError("Preview either a proposed rule or a deletion.")
    loaded = load_tenant_rules(tenant)
    principals = tenant_principals(tenant, loaded)
    if proposed is not None:
        proposed.full_clean()
        # A new rule gets an id no stored rule has, so it is added rather than replacing one.
        spec = proposed.to_spec(tenant.slug)
        if proposed.pk is None:
            spec = type(spec)(**{**spec.as_dict(), "id": -1})
            if spec.subject_kind == "service" and not any(
                    p.service == spec.subject_value for p in principals):
                principals.append(Principal.for_service(tenant.slug, spec.subject_value))
        return impact.preview(loaded.rules, proposed=spec, principals=principals, live=live,
                              version=loaded.version)
    return impact.preview(loaded.rules, removed_id=deleting.pk if deleting else None, principals=principals, live=live,
                          version=loaded.version)
