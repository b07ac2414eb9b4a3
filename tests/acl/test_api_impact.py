"""`POST acl/impact` without a broker to ask: the analysis of rights from the database, `live:
unavailable`, never a 500; drafts, edits and deletions previewed without saving anything.
(With a running broker, the live subscriptions: tests/broker/integration/test_platform_api_acl.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from acl.models import AclRule
from acl.services import create_rule
from devices.models import AuditEvent, ChangeEvent
from devices.services import create_device, create_group
from tests.conftest import free_port

pytestmark = pytest.mark.django_db
IMPACT = "/api/v1/tenants/acme/acl/impact"


@pytest.fixture(autouse=True)
def no_broker(settings: Any) -> None:
    """Nothing listens on the broker's metrics port (not even a broker someone else runs here)."""
    settings.ROOST_BROKER_METRICS_PORT = free_port()


@pytest.fixture
def admin(acme: Any, make_api_key: Any, api: Any) -> Any:
    create_device(acme, "d1", group=create_group(acme, "floor"))
    create_device(acme, "d2")
    return api(make_api_key(acme, "admin", name="preview"))


def _impact(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(IMPACT, body)
    assert response.status_code == 200, response.content
    return dict(response.json())


def _nothing_written(test: Any) -> Any:
    before = (AclRule.objects.count(), AuditEvent.objects.count(), ChangeEvent.objects.count())
    result = test()
    assert (AclRule.objects.count(), AuditEvent.objects.count(), ChangeEvent.objects.count()) == before
    return result


def test_a_draft_deny_rule_lists_the_rights_it_takes_and_saves_nothing(admin: Any) -> None:
    draft = {"subject_kind": "group", "subject_group": "floor", "action": "publish", "effect": "deny",
             "topic_filter": "devices/{device}/cmd"}
    body = _nothing_written(lambda: _impact(admin, draft))
    assert [(c["principal"], c["action"], c["target"], c["change"]) for c in body["changes"]] == [
        ("device d1", "publish", "devices/d1/cmd", "loses")]
    assert body["principals_affected"] == body["principals_checked"] == 1 and not body["truncated"]
    assert any("device d1" in line for line in body["lines"])


def test_without_a_broker_the_answer_says_live_is_unavailable(admin: Any) -> None:
    body = _impact(admin, {"subject_kind": "all_devices", "action": "subscribe", "effect": "deny",
                           "topic_filter": "devices/{device}/#"})
    assert body["live"] == "unavailable"
    assert "did not answer" in body["live_error"]
    assert (body["live_sessions"], body["live_subscriptions"], body["subscriptions"]) == (None, None, [])
    assert {c["principal"] for c in body["changes"]} == {"device d1", "device d2"}


def test_with_the_metrics_port_off_the_answer_says_why(admin: Any, settings: Any) -> None:
    settings.ROOST_BROKER_METRICS_PORT = 0
    body = _impact(admin, {"subject_kind": "all_devices", "action": "both", "topic_filter": "x/#"})
    assert body["live"] == "unavailable" and "ROOST_BROKER_METRICS_PORT=0" in body["live_error"]


def test_an_edit_of_a_rule_is_previewed_without_changing_it(acme: Any, admin: Any) -> None:
    rule = AclRule.objects.get(tenant=acme, topic_filter="devices/{device}/#")
    body = _nothing_written(lambda: _impact(admin, {"rule_id": rule.pk, "enabled": False}))
    assert {(c["principal"], c["change"]) for c in body["changes"]} == {("device d1", "loses"),
                                                                       ("device d2", "loses")}
    assert AclRule.objects.get(pk=rule.pk).enabled


def test_an_edit_that_moves_a_rule_to_one_device_shows_only_the_others_losing(acme: Any, admin: Any) -> None:
    rule = AclRule.objects.get(tenant=acme, topic_filter="devices/{device}/#")
    body = _impact(admin, {"rule_id": rule.pk, "subject_kind": "device", "subject_device": "d1"})
    assert {c["principal"] for c in body["changes"]} == {"device d2"}


def test_a_deletion_is_previewed_without_deleting(acme: Any, admin: Any) -> None:
    operators = AclRule.objects.get(tenant=acme, subject_role="operator")
    body = _nothing_written(lambda: _impact(admin, {"delete": operators.pk}))
    assert {(c["principal"], c["change"]) for c in body["changes"]} == {
        ("role operator", "loses"), ("role admin", "loses"), ("role owner", "loses")}


def test_a_rule_for_a_new_service_shows_the_service_gaining(admin: Any) -> None:
    body = _impact(admin, {"subject_kind": "service", "subject_service": "ingest", "action": "subscribe",
                           "topic_filter": "devices/+/telemetry"})
    assert [(c["principal"], c["change"]) for c in body["changes"]] == [("service ingest", "gains")]


def _error(response: Any) -> tuple[int, str | None]:
    body = response.json()
    assert set(body) == {"code", "message", "field", "errors"}
    return response.status_code, body["field"]


def test_a_bad_draft_filter_is_an_error_on_topic_filter(admin: Any) -> None:
    response = admin.post(IMPACT, {"subject_kind": "all_devices", "action": "both", "topic_filter": "a/#/b"})
    assert _error(response) == (400, "topic_filter")


def test_a_draft_for_a_group_of_another_tenant_is_an_error_on_subject_group(globex: Any, admin: Any) -> None:
    create_group(globex, "theirs")
    response = admin.post(IMPACT, {"subject_kind": "group", "subject_group": "theirs", "action": "both",
                                   "topic_filter": "a/#"})
    assert _error(response) == (400, "subject_group")


def test_a_new_draft_needs_its_kind_action_and_filter(admin: Any) -> None:
    response = admin.post(IMPACT, {"subject_kind": "all_devices", "action": "both"})
    assert _error(response) == (400, "topic_filter")
    fields = {item["field"] for item in admin.post(IMPACT, {}).json()["errors"]}
    assert fields == {"subject_kind", "action", "topic_filter"}


def test_an_unknown_rule_or_another_tenants_rule_is_an_error_on_rule_id_or_delete(globex: Any, admin: Any) -> None:
    theirs = create_rule(globex, subject_kind="all_devices", action="both", topic_filter="g/#")
    assert _error(admin.post(IMPACT, {"rule_id": theirs.pk, "enabled": False})) == (400, "rule_id")
    assert _error(admin.post(IMPACT, {"rule_id": 10**12})) == (400, "rule_id")
    assert _error(admin.post(IMPACT, {"delete": theirs.pk})) == (400, "delete")


def test_a_deletion_preview_takes_nothing_else(acme: Any, admin: Any) -> None:
    rule = AclRule.objects.filter(tenant=acme).first()
    response = admin.post(IMPACT, {"delete": rule.pk, "topic_filter": "x/#"})
    assert _error(response) == (400, "topic_filter")
