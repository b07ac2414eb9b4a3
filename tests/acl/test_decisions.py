"""Publish and subscribe decisions: default deny, deny wins, limits, $ topics, shared subscriptions."""

from __future__ import annotations

import itertools

import pytest

from acl.compiler import compile_rules
from acl.rules import Principal, RuleSpec

from .helpers import rule

D1 = Principal.for_device("acme", "d1")


def test_nothing_is_allowed_without_rules() -> None:
    matcher = compile_rules(D1, [])
    decision = matcher.publish("a")
    assert not decision.allowed and decision.reason == "no allow rule matches"
    assert matcher.subscribe("a").outcome == "refused"


def test_an_explicit_deny_beats_any_allow_in_any_order() -> None:
    rules = [rule("a/#", id=1), rule("a/b", "deny", id=2), rule("a/+", id=3)]
    for order in itertools.permutations(rules):
        decision = compile_rules(D1, order).publish("a/b")
        assert not decision.allowed
        assert decision.reason == "deny rule 2 matches"
        assert compile_rules(D1, order).publish("a/c").allowed


def test_actions_are_separate() -> None:
    matcher = compile_rules(D1, [rule("p/#", action="publish"), rule("s/#", action="subscribe"),
                                 rule("s/secret", "deny", action="publish")])
    assert matcher.publish("p/x").allowed and not matcher.subscribe("p/x").allowed
    assert matcher.subscribe("s/x").allowed and not matcher.publish("s/x").allowed
    # A publish deny does not touch subscriptions.
    assert matcher.subscribe("s/secret").outcome == "granted"


def test_max_qos_limits_publishes() -> None:
    matcher = compile_rules(D1, [rule("t", max_qos=1, id=7)])
    assert matcher.publish("t", qos=1).allowed
    decision = matcher.publish("t", qos=2)
    assert not decision.allowed and decision.reason == "QoS 2 above maximum 1"


def test_any_matching_allow_may_permit_the_qos_and_retain_combination() -> None:
    matcher = compile_rules(D1, [rule("t/#", max_qos=0, allow_retain=True), rule("t/x", max_qos=2, allow_retain=False)])
    assert matcher.publish("t/x", qos=2).allowed
    assert matcher.publish("t/x", qos=0, retain=True).allowed
    assert not matcher.publish("t/x", qos=2, retain=True).allowed


def test_retained_publishes_need_a_rule_that_allows_retain() -> None:
    matcher = compile_rules(D1, [rule("t", allow_retain=False, id=4)])
    assert matcher.publish("t", retain=False).allowed
    decision = matcher.publish("t", retain=True)
    assert not decision.allowed and decision.code == "retain_not_allowed" and decision.rule_ids == (4,)


def test_wills_are_judged_as_publishes() -> None:
    matcher = compile_rules(D1, [rule("devices/d1/#", max_qos=1, allow_retain=False)])
    assert matcher.will("devices/d1/status", 1, False).allowed
    assert not matcher.will("devices/d1/status", 1, True).allowed
    assert not matcher.will("devices/d2/status", 0, False).allowed


@pytest.mark.parametrize("topic", ["", "a/+", "a/#", "a\x00b"])
def test_an_invalid_topic_is_denied(topic: str) -> None:
    decision = compile_rules(D1, [rule("#")]).publish(topic)
    assert not decision.allowed and decision.code == "invalid"


def test_an_invalid_qos_is_denied() -> None:
    matcher = compile_rules(D1, [rule("#")])
    assert not matcher.publish("a", qos=3).allowed
    assert matcher.subscribe("a", qos=3).outcome == "refused"


def test_wildcards_at_the_first_level_never_reach_dollar_topics() -> None:
    matcher = compile_rules(D1, [rule("#"), rule("+/#"), rule("+/+")])
    assert not matcher.publish("$SYS/broker").allowed
    assert matcher.subscribe("$SYS/#").outcome == "refused"
    assert matcher.subscribe("#").outcome == "granted"
    named = compile_rules(D1, [rule("$SYS/#", action="subscribe")])
    assert named.subscribe("$SYS/broker/+").outcome == "granted"
    assert named.subscribe("#").outcome == "refused"


def test_a_dollar_deny_does_not_make_a_plain_wildcard_subscription_partial() -> None:
    matcher = compile_rules(D1, [rule("#"), rule("$roost/#", "deny")])
    assert matcher.subscribe("#").outcome == "granted"
    assert matcher.subscribe("+/x").outcome == "granted"


def test_topics_compare_byte_for_byte() -> None:
    matcher = compile_rules(D1, [rule("Caf\u00e9/Temp")])
    assert matcher.publish("Caf\u00e9/Temp").allowed
    assert not matcher.publish("caf\u00e9/temp").allowed
    assert not matcher.publish("Cafe\u0301/Temp").allowed
    assert not matcher.publish("CAF\u00c9/TEMP").allowed


def test_empty_levels_are_levels() -> None:
    matcher = compile_rules(D1, [rule("a//b"), rule("/x")])
    assert matcher.publish("a//b").allowed and matcher.publish("/x").allowed
    assert not matcher.publish("a/b").allowed and not matcher.publish("x").allowed


def test_a_subscription_inside_an_allow_is_granted_and_one_wider_is_refused() -> None:
    matcher = compile_rules(D1, [rule("devices/d1/#", action="subscribe", id=3)])
    decision = matcher.subscribe("devices/d1/+/temp", 1)
    assert decision.outcome == "granted" and decision.qos == 1 and decision.rule_ids == (3,)
    assert matcher.subscribe("devices/#").outcome == "refused"
    assert matcher.subscribe("devices/+/status").outcome == "refused"


def test_plus_slash_hash_covers_hash() -> None:
    assert compile_rules(D1, [rule("+/#")]).subscribe("#").outcome == "granted"
    assert compile_rules(D1, [rule("a/+/#")]).subscribe("a/#").outcome == "refused"


def test_a_subscription_overlapping_a_deny_is_partial_and_deliveries_are_checked() -> None:
    matcher = compile_rules(D1, [rule("#", id=1), rule("alarms/secret/#", "deny", id=7)])
    decision = matcher.subscribe("alarms/#", 2)
    assert decision.outcome == "partial" and decision.allowed
    assert decision.reason == "granted partially: overlaps deny rule 7"
    assert matcher.deliverable("alarms/fire")
    assert not matcher.deliverable("alarms/secret")
    assert not matcher.deliverable("alarms/secret/x")


def test_a_subscription_wholly_inside_a_deny_is_refused() -> None:
    matcher = compile_rules(D1, [rule("#"), rule("alarms/#", "deny", id=9)])
    decision = matcher.subscribe("alarms/+/x")
    assert decision.outcome == "refused" and decision.reason == "deny rule 9 matches"


def test_max_qos_caps_the_granted_qos() -> None:
    matcher = compile_rules(D1, [rule("a/#", max_qos=0, id=1), rule("a/b/#", max_qos=1, id=2)])
    assert matcher.subscribe("a/x", 2).qos == 0
    decision = matcher.subscribe("a/b/c", 2)
    assert decision.qos == 1 and decision.rule_ids == (2,)
    assert matcher.subscribe("a/b/c", 0).qos == 0


def test_shared_subscriptions_are_judged_on_their_filter() -> None:
    matcher = compile_rules(D1, [rule("jobs/#", id=1), rule("jobs/secret", "deny", id=2)])
    assert matcher.subscribe("$share/workers/jobs/+/run").outcome == "granted"
    assert matcher.subscribe("$share/workers/jobs/#").outcome == "partial"
    assert matcher.subscribe("$share/workers/other/#").outcome == "refused"
    for malformed in ["$share/", "$share/workers", "$share//jobs/#", "$share/w+/jobs/#", "$share/w/"]:
        assert matcher.subscribe(malformed).code == "invalid", malformed


def test_a_share_group_name_cannot_smuggle_levels_into_the_filter() -> None:
    matcher = compile_rules(D1, [rule("devices/d1/#")])
    assert matcher.subscribe("$share/devices/d1/#").outcome == "refused"  # the filter is d1/#


def test_disabled_rules_never_apply() -> None:
    matcher = compile_rules(D1, [rule("a", enabled=False), rule("b", "deny", enabled=False), rule("b")])
    assert not matcher.publish("a").allowed
    assert matcher.publish("b").allowed


def test_rules_of_another_tenant_never_apply() -> None:
    matcher = compile_rules(D1, [rule("#", tenant="globex")])
    assert matcher.rules == () and not matcher.publish("a").allowed


def test_subjects_select_the_right_principals() -> None:
    rules = [
        rule("all", subject_kind="all_devices"),
        rule("grp", subject_kind="group", subject_value="building"),
        rule("dev", subject_kind="device", subject_value="d1"),
        rule("view", subject_kind="role", subject_value="viewer"),
        rule("op", subject_kind="role", subject_value="operator"),
        rule("adm", subject_kind="role", subject_value="admin"),
        rule("svc", subject_kind="service", subject_value="cred-1"),
    ]

    def allowed(principal: Principal) -> set[str]:
        matcher = compile_rules(principal, rules)
        return {t for t in ["all", "grp", "dev", "view", "op", "adm", "svc"] if matcher.publish(t).allowed}

    nested = Principal.for_device("acme", "d1", ("floor-1", "building"))
    assert allowed(nested) == {"all", "grp", "dev"}
    assert allowed(Principal.for_device("acme", "d2", ("other",))) == {"all"}
    assert allowed(Principal.for_role("acme", "viewer")) == {"view"}
    assert allowed(Principal.for_role("acme", "operator")) == {"view", "op"}
    assert allowed(Principal.for_role("acme", "owner")) == {"view", "op", "adm"}
    assert allowed(Principal.for_service("acme", "cred-1")) == {"svc"}
    assert allowed(Principal.for_service("acme", "cred-2")) == set()


def test_rule_specs_validate_themselves() -> None:
    with pytest.raises(ValueError):
        RuleSpec(id=1, tenant="acme", subject_kind="everyone", subject_value="", action="both",
                 topic_filter="#", effect="allow")
    with pytest.raises(ValueError):
        RuleSpec(id=1, tenant="acme", subject_kind="all_devices", subject_value="", action="both",
                 topic_filter="#", effect="allow", max_qos=3)
    with pytest.raises(ValueError):
        Principal(kind="user", tenant="acme", role="superhero")


def test_an_invalid_stored_template_is_skipped_with_a_reason() -> None:
    matcher = compile_rules(D1, [rule("a/x{device}")])
    assert matcher.rules == () and "whole level" in matcher.skipped[0][1]


def test_deep_filters_and_topics_compile_and_decide() -> None:
    deep = "/".join(["a"] * 600)
    matcher = compile_rules(D1, [rule(deep + "/#"), rule(deep + "/x", "deny", action="subscribe")])
    assert matcher.publish(deep + "/b").allowed
    assert matcher.subscribe(deep + "/#").outcome == "partial"
    assert matcher.subscribe("#").outcome == "refused"
