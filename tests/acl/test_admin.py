"""The rule admin: edits are audited and announced; explain and impact pages work."""

from __future__ import annotations

import pytest

from acl.models import AclRule
from devices.models import AuditEvent, ChangeEvent
from devices.services import create_device

pytestmark = pytest.mark.django_db


def rule_form(acme, **overrides):
    data = {"tenant": acme.pk, "subject_kind": "all_devices", "subject_group": "", "subject_device": "",
            "subject_role": "", "subject_service": "", "action": "publish", "topic_filter": "cmd/{device}",
            "effect": "deny", "max_qos": "", "allow_retain": "on", "enabled": "on", "description": "x"}
    data.update(overrides)
    return data


def test_adding_a_rule_in_the_admin_writes_audit_and_change_events(admin_client, acme) -> None:
    response = admin_client.post("/admin/acl/aclrule/add/", rule_form(acme))
    assert response.status_code == 302, response.content[:2000]
    rule = AclRule.objects.get(topic_filter="cmd/{device}")
    assert ChangeEvent.objects.filter(kind="acl_rule", op="created", object_id=str(rule.pk)).exists()
    audit = AuditEvent.objects.get(action="acl_rule.create", target_id=str(rule.pk))
    assert audit.actor_label == "root"


def test_the_admin_refuses_a_variable_inside_a_level(admin_client, acme) -> None:
    response = admin_client.post("/admin/acl/aclrule/add/", rule_form(acme, topic_filter="cmd/x{device}"))
    assert response.status_code == 200
    assert b"must be the whole level" in response.content
    assert not AclRule.objects.filter(topic_filter="cmd/x{device}").exists()


def test_deleting_in_the_admin_announces_the_deletion(admin_client, acme) -> None:
    rule = AclRule.objects.filter(tenant=acme).first()
    response = admin_client.post(f"/admin/acl/aclrule/{rule.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert ChangeEvent.objects.filter(kind="acl_rule", op="deleted", object_id=str(rule.pk)).exists()


def test_the_explain_page_explains(admin_client, acme) -> None:
    create_device(acme, "d1")
    response = admin_client.get("/admin/acl/aclrule/explain/", {
        "tenant": "acme", "device": "d1", "role": "", "service": "", "action": "publish",
        "topic": "devices/d2/x", "qos": "0"})
    assert response.status_code == 200
    assert b"no allow rule matches" in response.content
    response = admin_client.get("/admin/acl/aclrule/explain/", {
        "tenant": "acme", "role": "viewer", "action": "subscribe", "topic": "#", "qos": "1"})
    assert b"granted QoS 1" in response.content


def test_the_explain_page_asks_for_exactly_one_principal(admin_client, acme) -> None:
    response = admin_client.get("/admin/acl/aclrule/explain/", {
        "tenant": "acme", "action": "publish", "topic": "a", "qos": "0"})
    assert b"Pick exactly one" in response.content


def test_the_impact_page_previews_without_saving(admin_client, acme) -> None:
    create_device(acme, "d1")
    count, events = AclRule.objects.count(), ChangeEvent.objects.count()
    response = admin_client.post("/admin/acl/aclrule/impact/", rule_form(acme, topic_filter="devices/{device}/cmd"))
    assert response.status_code == 200
    assert b"device d1 loses publish on devices/d1/cmd" in response.content
    assert AclRule.objects.count() == count and ChangeEvent.objects.count() == events


def test_the_impact_page_previews_a_deletion(admin_client, acme) -> None:
    rule = AclRule.objects.get(tenant=acme, subject_role="operator")
    response = admin_client.get("/admin/acl/aclrule/impact/", {"rule": rule.pk, "delete": "1"})
    assert response.status_code == 200
    assert b"role operator loses publish" in response.content
    assert AclRule.objects.filter(pk=rule.pk).exists()


def test_the_rule_pages_link_to_explain_and_impact(admin_client, acme) -> None:
    assert b"/admin/acl/aclrule/explain/" in admin_client.get("/admin/acl/aclrule/").content
    rule = AclRule.objects.filter(tenant=acme).first()
    page = admin_client.get(f"/admin/acl/aclrule/{rule.pk}/change/").content
    assert b"Preview impact before saving" in page and b"delete=1" in page


def test_staff_without_permissions_cannot_use_the_pages(client, django_user_model, acme) -> None:
    user = django_user_model.objects.create_user("staff", password="staff-password-1", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/acl/aclrule/explain/").status_code == 403
    assert client.get("/admin/acl/aclrule/impact/").status_code == 403
