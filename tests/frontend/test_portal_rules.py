"""The access rules pages: list, editor with field messages, impact preview, deletion, explain."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from acl.models import AclRule
from acl.services import create_rule
from devices.models import AuditEvent, Membership, Role
from devices.services import create_device

pytestmark = pytest.mark.django_db

RULES = "/portal/t/acme/rules/"
NEW = RULES + "new/"
EXPLAIN = RULES + "explain/"
DRAFT = {"subject_kind": "all_devices", "action": "subscribe", "topic_filter": "alerts/#", "effect": "allow",
         "max_qos": "1", "allow_retain": "on", "enabled": "on", "description": "alerts for everyone"}


@pytest.fixture(autouse=True)
def _no_broker(settings: Any) -> None:
    # No broker runs in these tests; the live half of the preview is the browser test's.
    settings.ROOST_BROKER_METRICS_PORT = 0


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_member(acme: Any, django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user("ada", password="x-password-1")
    Membership.objects.create(user=user, tenant=acme, role=Role.ADMIN)
    return user


def test_the_rules_page_lists_the_tenants_rules_and_no_other(bob: Any, globex: Any) -> None:
    create_rule(globex, subject_kind="all_devices", action="publish", topic_filter="globex/only")
    response = _client(bob).get(RULES)
    assert response.status_code == 200
    body = response.content.decode()
    assert "devices/{device}/#" in body and "globex/only" not in body
    assert {r.tenant.slug for r in response.context["page"]} == {"acme"}


def test_a_viewer_sees_no_editing_links(bob: Any) -> None:
    body = _client(bob).get(RULES).content.decode()
    assert 'id="new-rule"' not in body and "/delete/" not in body and "Explain a decision" in body


def test_an_admin_creates_a_rule_audited_with_their_name(admin_member: Any, acme: Any) -> None:
    response = _client(admin_member).post(NEW, DRAFT)
    assert response.status_code == 302 and response["Location"] == RULES
    rule = AclRule.objects.get(tenant=acme, topic_filter="alerts/#")
    assert (rule.action, rule.max_qos, rule.allow_retain, rule.description) == ("subscribe", 1, True,
                                                                                "alerts for everyone")
    event = AuditEvent.objects.filter(target_id=str(rule.pk)).latest("id")
    assert event.actor_user == admin_member and event.action == "acl_rule.create"


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"topic_filter": "a/#/b"}, "topic_filter", ""),
    ({"subject_kind": "group"}, "subject_group", "needs this field"),
    ({"subject_role": "viewer"}, "subject_role", "Leave this empty"),
    ({"subject_kind": "device", "subject_device": "nobody"}, "subject_device", "no device with this name"),
    ({"action": "fly"}, "action", "valid choice"),
    ({"topic_filter": ""}, "topic_filter", "required"),
])
def test_a_bad_rule_is_refused_at_its_field_and_nothing_is_saved(admin_member: Any, acme: Any, changes: Any,
                                                                  field: str, message: str) -> None:
    before = AclRule.objects.count()
    response = _client(admin_member).post(NEW, {**DRAFT, **changes})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message.lower() in " ".join(errors[field]).lower()
    assert AclRule.objects.count() == before
    assert 'class="errorlist' in response.content.decode()


def test_a_device_rule_names_its_device(admin_member: Any, acme: Any) -> None:
    create_device(acme, "sensor-1")
    _client(admin_member).post(NEW, {**DRAFT, "subject_kind": "device", "subject_device": "sensor-1"})
    assert AclRule.objects.get(topic_filter="alerts/#").subject_device.name == "sensor-1"


def test_a_device_of_another_tenant_cannot_be_named(admin_member: Any, acme: Any, globex: Any) -> None:
    create_device(globex, "foreign")
    response = _client(admin_member).post(NEW, {**DRAFT, "subject_kind": "device", "subject_device": "foreign"})
    assert "subject_device" in response.context["form"].errors
    assert not AclRule.objects.filter(topic_filter="alerts/#").exists()


def test_the_editor_shows_the_rule_and_saves_a_change(admin_member: Any, acme: Any) -> None:
    rule = create_rule(acme, subject_kind="role", subject_role="viewer", action="subscribe", topic_filter="x/#")
    client = _client(admin_member)
    page = client.get(f"{RULES}{rule.pk}/")
    assert page.status_code == 200 and 'value="x/#"' in page.content.decode()
    response = client.post(f"{RULES}{rule.pk}/", {"subject_kind": "role", "subject_role": "operator",
                                                  "action": "subscribe", "topic_filter": "y/#", "effect": "deny"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.subject_role, rule.topic_filter, rule.effect, rule.enabled) == ("operator", "y/#", "deny", False)


def test_a_rule_of_another_tenant_is_not_found(admin_member: Any, globex: Any) -> None:
    foreign = create_rule(globex, subject_kind="all_devices", action="publish", topic_filter="g")
    client = _client(admin_member)
    assert client.get(f"{RULES}{foreign.pk}/").status_code == 404
    assert client.post(f"{RULES}{foreign.pk}/delete/").status_code == 404
    assert AclRule.objects.filter(pk=foreign.pk).exists()


def test_the_preview_lists_the_rights_a_draft_changes_and_saves_nothing(admin_member: Any, acme: Any) -> None:
    create_device(acme, "sensor-1")
    before = AclRule.objects.count()
    response = _client(admin_member).post(NEW, {**DRAFT, "subject_kind": "device", "subject_device": "sensor-1",
                                                "preview": "1"})
    assert response.status_code == 200
    body = response.content.decode()
    assert AclRule.objects.count() == before
    assert "device sensor-1 gains subscribe on alerts/#" in body
    # No broker runs here: the page says so rather than pretending no session is affected.
    assert 'id="live-unavailable"' in body and "metrics port is off" in body


def test_a_bad_draft_is_refused_at_its_field_by_the_preview_too(admin_member: Any, acme: Any) -> None:
    response = _client(admin_member).post(NEW, {**DRAFT, "subject_kind": "service", "preview": "1"})
    assert "subject_service" in response.context["form"].errors
    assert 'id="impact"' not in response.content.decode()


def test_deleting_a_rule_previews_its_impact_then_deletes_it(admin_member: Any, acme: Any) -> None:
    create_device(acme, "sensor-1")
    rule = AclRule.objects.get(tenant=acme, topic_filter="devices/{device}/#")
    client = _client(admin_member)
    page = client.get(f"{RULES}{rule.pk}/delete/").content.decode()
    assert "device sensor-1 loses" in page and AclRule.objects.filter(pk=rule.pk).exists()
    assert client.post(f"{RULES}{rule.pk}/delete/").status_code == 302
    assert not AclRule.objects.filter(pk=rule.pk).exists()


def test_explain_says_which_rule_lets_a_device_subscribe(bob: Any, acme: Any) -> None:
    create_device(acme, "sensor-1")
    rule = AclRule.objects.get(tenant=acme, topic_filter="devices/{device}/#")
    response = _client(bob).get(EXPLAIN, {"device": "sensor-1", "action": "subscribe",
                                          "topic": "devices/sensor-1/cmd", "qos": "1"})
    assert response.status_code == 200
    assert response.context["explanation"].allowed
    assert [line.spec.id for line, _ in response.context["deciding"]] == [rule.pk]
    assert f"rule {rule.pk}" in response.content.decode()


def test_explain_refuses_another_devices_topic(bob: Any, acme: Any) -> None:
    create_device(acme, "sensor-1")
    response = _client(bob).get(EXPLAIN, {"device": "sensor-1", "action": "subscribe",
                                          "topic": "devices/other/cmd", "qos": "0"})
    assert not response.context["explanation"].allowed
    assert 'id="decision"' in response.content.decode()


@pytest.mark.parametrize(("query", "field"), [
    ({"device": "ghost", "action": "subscribe", "topic": "a"}, "device"),
    ({"device": "sensor-1", "role": "viewer", "action": "subscribe", "topic": "a"}, None),
    ({"role": "viewer", "action": "subscribe"}, "topic"),
])
def test_explain_reports_bad_input_at_the_field(bob: Any, acme: Any, query: Any, field: str | None) -> None:
    create_device(acme, "sensor-1")
    response = _client(bob).get(EXPLAIN, query)
    assert response.status_code == 200 and response.context["explanation"] is None
    errors = response.context["form"].errors
    assert (field or "__all__") in errors, errors


def test_the_rules_list_is_searchable_and_filtered(bob: Any, acme: Any) -> None:
    deny = create_rule(acme, subject_kind="all_devices", action="publish", topic_filter="plant/valves/#",
                       effect="deny", description="no valve writes")
    client = _client(bob)
    assert [r.pk for r in client.get(RULES, {"q": "valve"}).context["page"]] == [deny.pk]
    assert [r.pk for r in client.get(RULES, {"effect": "deny"}).context["page"]] == [deny.pk]
    roles = client.get(RULES, {"subject_kind": "role"}).context["page"]
    assert roles and all(r.subject_kind == "role" for r in roles)
    fragment = client.get(RULES, {"q": "valve"}, headers={"HX-Request": "true"}).content.decode()
    assert fragment.startswith('<div id="rule-table">') and "plant/valves/#" in fragment and "<html" not in fragment
