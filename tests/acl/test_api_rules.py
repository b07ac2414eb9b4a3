"""`acl-rules/`: create, read, change and delete rules by API key, with the subject by name,
field-level errors in the shared shape, filters, and every write audited with the key's name."""

from __future__ import annotations

from typing import Any

import pytest

from acl.models import AclRule, AclRuleSet
from devices.models import AuditEvent, ChangeEvent
from devices.services import create_device, create_group

pytestmark = pytest.mark.django_db
RULES = "/api/v1/tenants/acme/acl-rules/"


@pytest.fixture
def admin(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, "admin", name="rules-bot"))


def _error(response: Any) -> tuple[int, str | None, str]:
    body = response.json()
    assert set(body) == {"code", "message", "field", "errors"}
    return response.status_code, body["field"], body["message"]


def test_an_admin_key_creates_a_group_rule_named_by_the_group(acme: Any, admin: Any) -> None:
    create_group(acme, "line-3")
    version = AclRuleSet.objects.get(tenant=acme).version
    response = admin.post(RULES, {"subject_kind": "group", "subject_group": "line-3", "action": "publish",
                                  "topic_filter": "factory/line-3/{device}/telemetry", "max_qos": 1,
                                  "allow_retain": False})
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"].endswith(f"{RULES}{body['id']}/")
    assert {k: body[k] for k in ("subject_kind", "subject_group", "subject_device", "subject_role",
                                 "subject_service", "subject", "action", "effect", "max_qos", "allow_retain",
                                 "enabled")} == {
        "subject_kind": "group", "subject_group": "line-3", "subject_device": None, "subject_role": None,
        "subject_service": None, "subject": "group line-3", "action": "publish", "effect": "allow", "max_qos": 1,
        "allow_retain": False, "enabled": True}
    rule = AclRule.objects.get(pk=body["id"])
    assert rule.subject_group.name == "line-3" and rule.tenant == acme
    assert AclRuleSet.objects.get(tenant=acme).version == version + 1
    assert ChangeEvent.objects.filter(kind="acl_rule", op="created", object_id=str(rule.pk)).exists()


def test_a_rule_created_with_a_key_is_audited_with_the_keys_name(acme: Any, admin: Any) -> None:
    response = admin.post(RULES, {"subject_kind": "all_devices", "action": "subscribe", "topic_filter": "fw/#"})
    event = AuditEvent.objects.get(action="acl_rule.create", target_id=str(response.json()["id"]))
    assert (event.actor_kind, event.actor_label, event.tenant) == ("api_key", "api-key:rules-bot", acme)
    assert event.after["topic_filter"] == "fw/#"


def test_a_topic_filter_mqtt_does_not_allow_is_an_error_on_topic_filter(admin: Any) -> None:
    response = admin.post(RULES, {"subject_kind": "all_devices", "action": "both", "topic_filter": "devices/#/x"})
    status, field, message = _error(response)
    assert (status, field) == (400, "topic_filter")
    assert "#" in message
    assert not AclRule.objects.filter(topic_filter="devices/#/x").exists()


def test_a_variable_that_is_not_a_whole_level_is_an_error_on_topic_filter(admin: Any) -> None:
    response = admin.post(RULES, {"subject_kind": "all_devices", "action": "both", "topic_filter": "d/x{device}"})
    assert _error(response)[:2] == (400, "topic_filter")


def test_a_nul_in_the_topic_filter_is_an_error_on_topic_filter(admin: Any) -> None:
    response = admin.post(RULES, {"subject_kind": "all_devices", "action": "both", "topic_filter": "a/\x00"})
    assert _error(response)[:2] == (400, "topic_filter")


def test_a_group_of_another_tenant_is_an_error_on_subject_group(globex: Any, admin: Any) -> None:
    create_group(globex, "globex-line")
    response = admin.post(RULES, {"subject_kind": "group", "subject_group": "globex-line", "action": "both",
                                  "topic_filter": "x/#"})
    status, field, message = _error(response)
    assert (status, field) == (400, "subject_group")
    assert "globex-line" in message and "acme" in message


def test_a_device_of_another_tenant_is_an_error_on_subject_device(globex: Any, admin: Any) -> None:
    create_device(globex, "globex-sensor")
    response = admin.post(RULES, {"subject_kind": "device", "subject_device": "globex-sensor", "action": "both",
                                  "topic_filter": "x/#"})
    assert _error(response)[:2] == (400, "subject_device")


def test_a_group_rule_without_its_group_is_an_error_on_subject_group(admin: Any) -> None:
    response = admin.post(RULES, {"subject_kind": "group", "action": "both", "topic_filter": "x/#"})
    status, field, message = _error(response)
    assert (status, field) == (400, "subject_group")
    assert "needs this field" in message


def test_a_subject_field_of_another_kind_is_an_error_on_that_field(acme: Any, admin: Any) -> None:
    create_device(acme, "sensor-1")
    response = admin.post(RULES, {"subject_kind": "role", "subject_role": "viewer", "subject_device": "sensor-1",
                                  "action": "subscribe", "topic_filter": "x/#"})
    status, field, message = _error(response)
    assert (status, field) == (400, "subject_device")
    assert "Leave this empty" in message


def test_an_unknown_subject_kind_is_an_error_on_subject_kind(admin: Any) -> None:
    response = admin.post(RULES, {"subject_kind": "everyone", "action": "both", "topic_filter": "x/#"})
    assert _error(response)[:2] == (400, "subject_kind")


def test_a_rule_without_an_action_is_an_error_on_action(admin: Any) -> None:
    response = admin.post(RULES, {"subject_kind": "all_devices", "topic_filter": "x/#"})
    assert _error(response)[:2] == (400, "action")


def test_every_field_error_is_listed(admin: Any) -> None:
    response = admin.post(RULES, {"subject_kind": "all_devices", "action": "jump", "topic_filter": "x/#",
                                  "max_qos": 3})
    fields = {item["field"] for item in response.json()["errors"]}
    assert response.status_code == 400 and fields == {"action", "max_qos"}


def test_a_rule_reads_back_as_it_was_created(acme: Any, admin: Any) -> None:
    create_device(acme, "sensor-1")
    created = admin.post(RULES, {"subject_kind": "device", "subject_device": "sensor-1", "action": "subscribe",
                                 "topic_filter": "cmd/{device}/#", "effect": "deny",
                                 "description": "no commands"}).json()
    shown = admin.get(f"{RULES}{created['id']}/")
    assert shown.status_code == 200
    assert shown.json() == created
    assert created["subject_device"] == "sensor-1" and created["subject"] == "device sensor-1"


def test_a_change_touches_only_the_fields_sent_and_is_audited_before_and_after(acme: Any, admin: Any) -> None:
    rule = admin.post(RULES, {"subject_kind": "all_devices", "action": "both", "topic_filter": "a/#"}).json()
    response = admin.patch(f"{RULES}{rule['id']}/", {"enabled": False, "max_qos": 0})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["enabled"], body["max_qos"], body["topic_filter"], body["action"]) == (False, 0, "a/#", "both")
    event = AuditEvent.objects.get(action="acl_rule.update", target_id=str(rule["id"]))
    assert event.actor_label == "api-key:rules-bot"
    assert (event.before["enabled"], event.after["enabled"]) == (True, False)


def test_changing_the_subject_kind_replaces_the_whole_subject(acme: Any, admin: Any) -> None:
    create_group(acme, "line-1")
    create_device(acme, "sensor-1")
    rule = admin.post(RULES, {"subject_kind": "group", "subject_group": "line-1", "action": "both",
                              "topic_filter": "a/#"}).json()
    response = admin.patch(f"{RULES}{rule['id']}/", {"subject_kind": "device", "subject_device": "sensor-1"})
    assert response.status_code == 200, response.content
    assert (response.json()["subject_group"], response.json()["subject_device"]) == (None, "sensor-1")


def test_a_change_to_a_bad_filter_is_refused_and_changes_nothing(acme: Any, admin: Any) -> None:
    rule = admin.post(RULES, {"subject_kind": "all_devices", "action": "both", "topic_filter": "a/#"}).json()
    response = admin.patch(f"{RULES}{rule['id']}/", {"topic_filter": "a+/b"})
    assert _error(response)[:2] == (400, "topic_filter")
    assert AclRule.objects.get(pk=rule["id"]).topic_filter == "a/#"


def test_deleting_a_rule_removes_it_and_is_audited(acme: Any, admin: Any) -> None:
    rule = admin.post(RULES, {"subject_kind": "all_devices", "action": "both", "topic_filter": "a/#"}).json()
    response = admin.delete(f"{RULES}{rule['id']}/")
    assert response.status_code == 204
    assert not AclRule.objects.filter(pk=rule["id"]).exists()
    event = AuditEvent.objects.get(action="acl_rule.delete", target_id=str(rule["id"]))
    assert event.actor_label == "api-key:rules-bot"
    assert ChangeEvent.objects.filter(kind="acl_rule", op="deleted", object_id=str(rule["id"])).exists()


def test_a_rule_of_another_tenant_answers_404(globex: Any, admin: Any) -> None:
    from acl.services import create_rule

    theirs = create_rule(globex, subject_kind="all_devices", action="both", topic_filter="g/#")
    for method in ("get", "patch", "delete"):
        response = getattr(admin, method)(f"{RULES}{theirs.pk}/", {"enabled": False})
        assert _error(response)[:1] == (404,)
    assert AclRule.objects.get(pk=theirs.pk).enabled


def test_an_unknown_or_absurd_rule_id_answers_404(admin: Any) -> None:
    for rule_id in ("999999", "99999999999999999999999"):
        assert admin.get(f"{RULES}{rule_id}/").status_code == 404
    assert admin.get(f"{RULES}abc/").status_code == 404


def test_put_is_not_offered(acme: Any, admin: Any) -> None:
    rule = AclRule.objects.filter(tenant=acme).first()
    assert admin.put(f"{RULES}{rule.pk}/", {}).status_code == 405


# Listing -------------------------------------------------------------------------------------


@pytest.fixture
def mixed(acme: Any) -> dict[str, int]:
    """Besides the tenant's default rules: a few of every kind."""
    from acl.services import create_rule

    group = create_group(acme, "line-1")
    made = {
        "deny": create_rule(acme, subject_kind="group", subject_group=group, action="publish",
                            topic_filter="devices/{device}/cmd", effect="deny"),
        "off": create_rule(acme, subject_kind="service", subject_service="ingest", action="subscribe",
                           topic_filter="Devices/+/telemetry", enabled=False),
        "tele": create_rule(acme, subject_kind="service", subject_service="ingest", action="subscribe",
                            topic_filter="devices/+/telemetry"),
    }
    return {name: rule.pk for name, rule in made.items()}


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [rule["id"] for rule in response.json()["results"]]


def test_rules_are_listed_by_id(acme: Any, admin: Any, mixed: dict[str, int]) -> None:
    ids = _ids(admin.get(RULES))
    assert ids == sorted(AclRule.objects.filter(tenant=acme).values_list("pk", flat=True))
    assert _ids(admin.get(RULES, {"ordering": "-id"})) == ids[::-1]


def test_rules_filter_by_kind_action_effect_enabled_and_subject(admin: Any, mixed: dict[str, int]) -> None:
    assert _ids(admin.get(RULES, {"subject_kind": "service"})) == [mixed["off"], mixed["tele"]]
    assert _ids(admin.get(RULES, {"effect": "deny"})) == [mixed["deny"]]
    assert _ids(admin.get(RULES, {"enabled": "false"})) == [mixed["off"]]
    assert _ids(admin.get(RULES, {"subject_group": "line-1"})) == [mixed["deny"]]
    assert _ids(admin.get(RULES, {"subject_service": "ingest", "action": "subscribe", "enabled": "true"})) == [
        mixed["tele"]]


def test_the_topic_filter_matches_rules_that_equal_or_start_with_it_case_sensitively(
        admin: Any, mixed: dict[str, int]) -> None:
    assert _ids(admin.get(RULES, {"topic": "devices/+/telemetry"})) == [mixed["tele"]]
    assert mixed["deny"] in _ids(admin.get(RULES, {"topic": "devices/"}))
    assert mixed["off"] not in _ids(admin.get(RULES, {"topic": "devices/"}))
    assert _ids(admin.get(RULES, {"topic": "Devices/"})) == [mixed["off"]]


def test_a_bad_filter_value_or_ordering_is_a_400_naming_it(admin: Any) -> None:
    assert _error(admin.get(RULES, {"effect": "maybe"}))[:2] == (400, "effect")
    assert _error(admin.get(RULES, {"ordering": "topic_filter"}))[:2] == (400, "ordering")


def test_rules_page_with_next_links(acme: Any, admin: Any, mixed: dict[str, int]) -> None:
    seen: list[int] = []
    response = admin.get(RULES, {"limit": 3})
    while True:
        page = _ids(response)
        assert len(page) <= 3
        seen.extend(page)
        link = response.json()["next"]
        if link is None:
            break
        response = admin.get(link)
    assert seen == sorted(AclRule.objects.filter(tenant=acme).values_list("pk", flat=True))
