"""`POST acl/explain`: the decision for a subject, action and topic with the rules that made it."""

from __future__ import annotations

from typing import Any

import pytest

from acl.models import AclRule
from acl.services import create_rule
from devices.models import AuditEvent
from devices.services import create_device, create_group

pytestmark = pytest.mark.django_db
EXPLAIN = "/api/v1/tenants/acme/acl/explain"


@pytest.fixture
def viewer(acme: Any, make_api_key: Any, api: Any) -> Any:
    create_device(acme, "sensor-1", group=create_group(acme, "line-1"))
    return api(make_api_key(acme, "viewer"))


def _own_tree_rule(tenant: Any) -> int:
    return int(AclRule.objects.get(tenant=tenant, topic_filter="devices/{device}/#").pk)


def _explain(client: Any, **body: Any) -> dict[str, Any]:
    response = client.post(EXPLAIN, body)
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_a_device_publishing_in_its_own_tree_is_allowed_by_the_default_rule(acme: Any, viewer: Any) -> None:
    body = _explain(viewer, subject={"device": "sensor-1"}, action="publish", topic="devices/sensor-1/temp", qos=1)
    assert (body["outcome"], body["allowed"], body["code"]) == ("allowed", True, "matched")
    assert body["deciding_rules"] == [_own_tree_rule(acme)]
    assert body["principal"] == "device sensor-1" and body["lines"]


def test_a_device_publishing_in_another_devices_tree_is_denied_with_no_rule_deciding(viewer: Any) -> None:
    body = _explain(viewer, subject={"device": "sensor-1"}, action="publish", topic="devices/sensor-2/temp")
    assert (body["outcome"], body["allowed"], body["code"], body["deciding_rules"]) == (
        "denied", False, "no_allow", [])


def test_a_deny_rule_for_the_devices_group_decides_against_the_allow(acme: Any, viewer: Any) -> None:
    deny = create_rule(acme, subject_kind="group", subject_group=acme.groups.get(name="line-1"), action="publish",
                       topic_filter="devices/{device}/cmd", effect="deny")
    body = _explain(viewer, subject={"device": "sensor-1"}, action="publish", topic="devices/sensor-1/cmd")
    assert (body["outcome"], body["code"], body["deciding_rules"]) == ("denied", "deny_rule", [deny.pk])
    assert deny.pk in body["considered_rules"]


def test_a_subscription_is_granted_at_the_rules_maximum_qos(acme: Any, viewer: Any) -> None:
    capped = create_rule(acme, subject_kind="device", subject_device=acme.devices.get(name="sensor-1"),
                         action="subscribe", topic_filter="fw/#", max_qos=1)
    body = _explain(viewer, subject={"device": "sensor-1"}, action="subscribe", topic="fw/+/image", qos=2)
    assert (body["outcome"], body["granted_qos"], body["deciding_rules"]) == ("granted", 1, [capped.pk])


def test_a_viewer_role_may_subscribe_to_everything_but_not_publish(viewer: Any) -> None:
    assert _explain(viewer, subject={"role": "viewer"}, action="subscribe", topic="devices/#")["allowed"]
    assert not _explain(viewer, subject={"role": "viewer"}, action="publish", topic="devices/x/cmd")["allowed"]
    assert _explain(viewer, subject={"role": "owner"}, action="publish", topic="devices/x/cmd")["allowed"]


def test_a_service_is_judged_by_the_rules_for_its_name(acme: Any, viewer: Any) -> None:
    rule = create_rule(acme, subject_kind="service", subject_service="ingest", action="subscribe",
                       topic_filter="devices/+/telemetry")
    body = _explain(viewer, subject={"service": "ingest"}, action="subscribe", topic="devices/+/telemetry")
    assert (body["allowed"], body["deciding_rules"]) == (True, [rule.pk])
    assert not _explain(viewer, subject={"service": "other"}, action="subscribe",
                        topic="devices/+/telemetry")["allowed"]


def test_a_malformed_topic_is_explained_as_the_broker_refuses_it(viewer: Any) -> None:
    body = _explain(viewer, subject={"device": "sensor-1"}, action="publish", topic="devices/sensor-1/+")
    assert (body["allowed"], body["code"]) == (False, "invalid")


def test_explaining_changes_nothing_and_audits_nothing(acme: Any, viewer: Any) -> None:
    before = AuditEvent.objects.count(), AclRule.objects.count()
    _explain(viewer, subject={"device": "sensor-1"}, action="will", topic="devices/sensor-1/status", retain=True)
    assert (AuditEvent.objects.count(), AclRule.objects.count()) == before


def _error(response: Any) -> tuple[int, str | None]:
    body = response.json()
    assert set(body) == {"code", "message", "field", "errors"}
    return response.status_code, body["field"]


def test_an_unknown_device_is_an_error_on_subject_device(viewer: Any) -> None:
    response = viewer.post(EXPLAIN, {"subject": {"device": "nope"}, "action": "publish", "topic": "a"})
    assert _error(response) == (400, "subject.device")


def test_a_device_of_another_tenant_is_unknown_here(globex: Any, viewer: Any) -> None:
    create_device(globex, "globex-sensor")
    response = viewer.post(EXPLAIN, {"subject": {"device": "globex-sensor"}, "action": "publish", "topic": "a"})
    assert _error(response) == (400, "subject.device")


def test_two_subjects_at_once_are_an_error_on_subject(viewer: Any) -> None:
    response = viewer.post(EXPLAIN, {"subject": {"device": "sensor-1", "role": "viewer"}, "action": "publish",
                                     "topic": "a"})
    assert _error(response) == (400, "subject")
    assert _error(viewer.post(EXPLAIN, {"subject": {}, "action": "publish", "topic": "a"})) == (400, "subject")


def test_an_unknown_action_role_or_qos_is_an_error_on_that_field(viewer: Any) -> None:
    assert _error(viewer.post(EXPLAIN, {"subject": {"role": "viewer"}, "action": "read", "topic": "a"})) == (
        400, "action")
    assert _error(viewer.post(EXPLAIN, {"subject": {"role": "god"}, "action": "publish", "topic": "a"})) == (
        400, "subject.role")
    assert _error(viewer.post(EXPLAIN, {"subject": {"role": "viewer"}, "action": "publish", "topic": "a",
                                        "qos": 3})) == (400, "qos")
