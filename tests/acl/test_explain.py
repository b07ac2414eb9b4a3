"""Explain says what was decided, by which rules, and why."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from acl.explain import explain
from acl.rules import Principal
from acl.services import create_rule, explain_for
from devices.services import create_device, create_group

from .helpers import rule

D1 = Principal.for_device("acme", "d1", attributes={"zone": "a/b"})
RULES = [
    rule("devices/{device}/#", id=1),
    rule("devices/{device}/secret", "deny", id=12),
    rule("devices/{device}/slow", max_qos=1, id=5),
    rule("zones/{attr:zone}/#", id=6),
    rule("alarms/#", action="subscribe", id=3),
    rule("alarms/private/#", "deny", action="subscribe", id=7),
]


def test_it_names_the_deny_rule_that_decided() -> None:
    result = explain(D1, "publish", "devices/d1/secret", rules=RULES)
    assert not result.allowed
    assert result.decision.reason == "deny rule 12 matches"
    assert [line.spec.id for line in result.deciding] == [12]
    assert result.deciding[0].effective_filter == "devices/d1/secret"
    assert "rule 12: deny both devices/d1/secret (from devices/{device}/secret)" in result.lines()[1]


def test_it_says_when_no_allow_rule_matches() -> None:
    result = explain(D1, "publish", "devices/d2/x", rules=RULES)
    assert result.decision.reason == "no allow rule matches" and result.deciding == ()


def test_it_reports_a_qos_above_the_maximum() -> None:
    result = explain(D1, "publish", "devices/d1/slow", qos=2, rules=[r for r in RULES if r.id == 5])
    assert result.decision.reason == "QoS 2 above maximum 1"
    assert [line.spec.id for line in result.deciding] == [5]


def test_it_reports_a_partial_grant_and_the_deny_rule() -> None:
    result = explain(D1, "subscribe", "alarms/#", qos=1, rules=RULES)
    assert result.decision.outcome == "partial"
    assert result.decision.reason == "granted partially: overlaps deny rule 7"
    assert {line.spec.id for line in result.deciding} == {3, 7}
    assert any("every delivery" in note for note in result.notes)
    assert explain(D1, "deliver", "alarms/private/x", rules=RULES).decision.reason == "deny rule 7 matches"
    assert explain(D1, "deliver", "alarms/fire", rules=RULES).allowed


def test_it_lists_rules_skipped_because_a_value_is_unsafe() -> None:
    result = explain(D1, "publish", "zones/a/b/x", rules=RULES)
    assert not result.allowed
    assert result.skipped[0][0].id == 6
    assert "skipped rule 6 (zones/{attr:zone}/#): {attr:zone} contains '/'" in result.lines()


def test_it_notes_shared_subscriptions_wills_and_dollar_topics() -> None:
    shared = explain(D1, "subscribe", "$share/g/alarms/fire", rules=RULES)
    assert shared.decision.outcome == "granted"
    assert "judged on its filter 'alarms/fire'" in shared.notes[0]
    will = explain(D1, "will", "devices/d1/status", qos=1, retain=True, rules=RULES)
    assert will.allowed and "CONNECT" in will.notes[0]
    dollar = explain(D1, "subscribe", "$SYS/#", rules=[rule("#")])
    assert not dollar.allowed and any("$ topics" in note for note in dollar.notes)


def test_it_suggests_a_narrower_filter_when_an_allow_covers_only_part() -> None:
    result = explain(D1, "subscribe", "devices/#", rules=RULES)
    assert result.decision.outcome == "refused"
    assert any("matches only part of the filter" in note for note in result.notes)


def test_it_refuses_unknown_actions() -> None:
    with pytest.raises(ValueError):
        explain(D1, "delete", "a", rules=RULES)


@pytest.mark.django_db
def test_the_service_explains_with_the_tenants_saved_rules(acme, globex) -> None:
    building = create_group(acme, "building")
    create_device(acme, "d1", group=create_group(acme, "floor", parent=building))
    create_rule(acme, subject_kind="group", subject_group=building, action="publish",
                topic_filter="sites/{group}/#")
    create_rule(globex, subject_kind="all_devices", action="publish", topic_filter="leak/#")
    result = explain_for(acme, "publish", "sites/floor/temp", device="d1")
    assert result.allowed and result.version > 0
    assert not explain_for(acme, "publish", "leak/x", device="d1").allowed
    assert explain_for(acme, "subscribe", "#", 1, role="viewer").decision.outcome == "granted"
    as_dict = explain_for(acme, "publish", "devices/d1/x", role="viewer").as_dict()
    assert as_dict["allowed"] is False and as_dict["reason"] == "no allow rule matches"


@pytest.mark.django_db
def test_the_service_refuses_a_device_of_another_tenant_or_no_principal(acme, globex) -> None:
    create_device(globex, "g1")
    with pytest.raises(ValidationError):
        explain_for(acme, "publish", "x", device="g1")
    with pytest.raises(ValidationError):
        explain_for(acme, "publish", "x")
    with pytest.raises(ValidationError):
        explain_for(acme, "publish", "x", device="d1", role="viewer")
