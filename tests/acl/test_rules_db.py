"""Stored rules: validation, change and audit events, versions, defaults, loading, isolation."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from acl.compiler import compile_rules
from acl.loading import device_principal, load_tenant_rules, rules_version, tenant_device_principals
from acl.models import AclRule
from acl.rules import RuleSpec
from acl.services import (
    DEFAULT_RULES,
    create_rule,
    delete_rule,
    forget_device_rules,
    install_default_rules,
    update_rule,
)
from devices.audit import Actor
from devices.models import AuditEvent, ChangeEvent
from devices.services import create_device, create_group, create_tenant, delete_device

pytestmark = pytest.mark.django_db


def acl_changes(tenant) -> list[ChangeEvent]:
    return list(ChangeEvent.objects.filter(kind="acl_rule", tenant=tenant).order_by("id"))


def test_a_new_tenant_gets_the_default_rules(acme) -> None:
    rules = load_tenant_rules(acme)
    assert len(rules.rules) == len(DEFAULT_RULES)
    device = create_device(acme, "d1")
    d1 = compile_rules(device_principal(device), rules.rules)
    assert d1.publish("devices/d1/temp").allowed and d1.subscribe("devices/d1/#").outcome == "granted"
    assert not d1.publish("devices/d2/temp").allowed and not d1.subscribe("#").allowed
    viewer = compile_rules(load_principal(acme, "viewer"), rules.rules)
    assert viewer.subscribe("#").outcome == "granted" and not viewer.publish("devices/d1/x").allowed
    assert viewer.subscribe("$roost/presence/#").outcome == "granted"
    assert viewer.subscribe("$roost/events/+").outcome == "granted"
    assert viewer.subscribe("$SYS/#").outcome == "refused"
    operator = compile_rules(load_principal(acme, "operator"), rules.rules)
    assert operator.publish("devices/d1/cmd").allowed and operator.subscribe("#").allowed
    assert not operator.publish("$roost/presence/d1").allowed


def load_principal(tenant, role):
    from acl.loading import role_principal

    return role_principal(tenant, role)


def test_default_rules_are_written_with_change_and_audit_events(acme) -> None:
    changes = acl_changes(acme)
    assert [c.op for c in changes] == ["created"] * len(DEFAULT_RULES)
    assert [c.payload["rules_version"] for c in changes] == list(range(1, len(DEFAULT_RULES) + 1))
    assert AuditEvent.objects.filter(tenant=acme, action="acl_rule.create").count() == len(DEFAULT_RULES)
    assert rules_version(acme) == len(DEFAULT_RULES)


def test_a_failed_tenant_creation_leaves_no_rules(db) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        create_tenant("doomed")
        raise RuntimeError("roll back")
    assert not AclRule.objects.exists()
    assert not ChangeEvent.objects.filter(kind="acl_rule").exists()


def test_every_change_writes_a_change_event_and_an_audit_event(acme) -> None:
    start = rules_version(acme)
    actor = Actor.system("tester")
    rule = create_rule(acme, actor=actor, subject_kind="all_devices", action="publish",
                       topic_filter="cmd/{device}", effect="deny", max_qos=1)
    rule = update_rule(rule, actor=actor, topic_filter="cmd/{device}/#", allow_retain=False)
    rule_id = rule.pk
    delete_rule(rule, actor=actor)
    created, updated, deleted = acl_changes(acme)[-3:]
    assert (created.op, updated.op, deleted.op) == ("created", "updated", "deleted")
    assert {c.object_id for c in (created, updated, deleted)} == {str(rule_id)}
    assert created.payload["tenant"] == "acme"
    assert [c.payload["rules_version"] for c in (created, updated, deleted)] == [start + 1, start + 2, start + 3]
    assert created.payload["rule"]["topic_filter"] == "cmd/{device}"
    assert created.payload["rule"]["effect"] == "deny" and created.payload["rule"]["max_qos"] == 1
    assert updated.payload["rule"]["topic_filter"] == "cmd/{device}/#"
    # The broker can apply the payload as is.
    assert RuleSpec.from_dict(updated.payload["rule"]) == RuleSpec(
        id=rule_id, tenant="acme", subject_kind="all_devices", subject_value="", action="publish",
        topic_filter="cmd/{device}/#", effect="deny", max_qos=1, allow_retain=False, enabled=True)
    assert deleted.payload == {"tenant": "acme", "rules_version": start + 3, "rule_id": rule_id}
    audits = AuditEvent.objects.filter(tenant=acme, target_id=str(rule_id)).order_by("id")
    assert [a.action for a in audits] == ["acl_rule.create", "acl_rule.update", "acl_rule.delete"]
    assert audits[1].before["topic_filter"] == "cmd/{device}" and audits[1].after["allow_retain"] is False
    assert audits[0].actor_label == "tester"


def test_a_rolled_back_change_leaves_no_event_and_no_version_bump(acme) -> None:
    version, events = rules_version(acme), ChangeEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        create_rule(acme, subject_kind="all_devices", action="both", topic_filter="x/#")
        raise RuntimeError("roll back")
    assert rules_version(acme) == version and ChangeEvent.objects.count() == events
    assert not AclRule.objects.filter(topic_filter="x/#").exists()


@pytest.mark.parametrize("template", ["devices/x{device}", "a/{serial}", "a/#/b", "a+", ""])
def test_it_refuses_an_invalid_filter_on_save(acme, template) -> None:
    events = ChangeEvent.objects.count()
    with pytest.raises(ValidationError) as info:
        create_rule(acme, subject_kind="all_devices", action="both", topic_filter=template)
    assert "topic_filter" in info.value.message_dict
    assert ChangeEvent.objects.count() == events


def test_it_refuses_an_inconsistent_subject(acme, globex) -> None:
    foreign_group = create_group(globex, "g")
    foreign_device = create_device(globex, "d9")
    cases = [
        ({"subject_kind": "group"}, "subject_group"),
        ({"subject_kind": "group", "subject_group": foreign_group}, "subject_group"),
        ({"subject_kind": "device", "subject_device": foreign_device}, "subject_device"),
        ({"subject_kind": "role", "subject_role": "viewer", "subject_service": "x"}, "subject_service"),
        ({"subject_kind": "role", "subject_role": "owner"}, "subject_role"),
        ({"subject_kind": "service"}, "subject_service"),
    ]
    for fields, field in cases:
        with pytest.raises(ValidationError) as info:
            create_rule(acme, action="both", topic_filter="#", **fields)
        assert field in info.value.message_dict, fields


def test_it_refuses_unknown_fields_and_moving_a_rule_to_another_tenant(acme, globex) -> None:
    with pytest.raises(ValidationError):
        create_rule(acme, subject_kind="all_devices", action="both", topic_filter="#", priority=1)
    rule = create_rule(acme, subject_kind="all_devices", action="both", topic_filter="#")
    with pytest.raises(ValidationError):
        update_rule(rule, tenant=globex)


def test_rules_of_one_tenant_never_load_for_another(acme, globex) -> None:
    create_rule(acme, subject_kind="all_devices", action="both", topic_filter="secret/#")
    create_device(globex, "d1")
    globex_rules = load_tenant_rules(globex)
    assert all(spec.tenant == "globex" for spec in globex_rules.rules)
    assert "secret/#" not in {spec.topic_filter for spec in globex_rules.rules}
    # Even handed the other tenant's rules by mistake, the matcher ignores them.
    principal = tenant_device_principals(globex)[0]
    matcher = compile_rules(principal, load_tenant_rules(acme).rules + globex_rules.rules)
    assert not matcher.publish("secret/x").allowed
    assert matcher.publish("devices/d1/x").allowed


def test_loading_fills_group_chains_and_attributes(acme) -> None:
    building = create_group(acme, "building")
    floor = create_group(acme, "floor-1", parent=building)
    create_device(acme, "d1", group=floor, attributes={"zone": "north"})
    create_device(acme, "d2")
    create_rule(acme, subject_kind="group", subject_group=building, action="publish",
                topic_filter="sites/{group}/{attr:zone}/{device}")
    principals = {p.device: p for p in tenant_device_principals(acme)}
    assert principals["d1"].groups == ("floor-1", "building")
    assert principals["d2"].groups == ()
    rules = load_tenant_rules(acme).rules
    assert compile_rules(principals["d1"], rules).publish("sites/floor-1/north/d1").allowed
    assert not compile_rules(principals["d2"], rules).publish("sites/floor-1/north/d2").allowed


def test_forgetting_a_devices_rules_records_their_deletion(acme) -> None:
    device = create_device(acme, "d1")
    create_rule(acme, subject_kind="device", subject_device=device, action="both", topic_filter="x/#")
    assert forget_device_rules(device) == 1
    assert acl_changes(acme)[-1].op == "deleted"
    assert not AclRule.objects.filter(subject_device=device).exists()


def test_deleting_a_device_deletes_its_rules_with_change_events(acme) -> None:
    device = create_device(acme, "d1")
    rule = create_rule(acme, subject_kind="device", subject_device=device, action="both",
                       topic_filter="x/#")
    delete_device(device)
    deleted = [c for c in acl_changes(acme) if c.op == "deleted"]
    assert [c.object_id for c in deleted] == [str(rule.pk)]
    assert not AclRule.objects.filter(pk=rule.pk).exists()


def test_a_group_with_rules_cannot_be_deleted(acme) -> None:
    from django.db.models import ProtectedError

    group = create_group(acme, "g")
    create_rule(acme, subject_kind="group", subject_group=group, action="both", topic_filter="g/#")
    with pytest.raises(ProtectedError):
        group.delete()


def test_installing_defaults_again_adds_a_second_identical_set(acme) -> None:
    # Defaults are ordinary rules: installing twice duplicates them, harmlessly (same rights).
    install_default_rules(acme)
    assert AclRule.objects.filter(tenant=acme).count() == 2 * len(DEFAULT_RULES)


def test_it_loads_every_enabled_tenant_and_users_by_membership(acme, globex, alice, bob, charlie) -> None:
    from acl.loading import load_all_rules, user_principal
    from devices.services import set_tenant_enabled

    set_tenant_enabled(globex, False)
    loaded = load_all_rules()
    assert set(loaded) == {"acme"} and loaded["acme"].version == rules_version(acme)
    assert user_principal(alice, acme).role == "owner"
    assert user_principal(bob, acme).role == "viewer"
    assert user_principal(charlie, acme) is None
