"""Impact preview: who gains or loses which rights, and which live subscriptions change."""

from __future__ import annotations

import time

import pytest

from acl.impact import preview
from acl.models import AclRule
from acl.rules import Principal
from acl.services import create_rule, preview_impact
from devices.services import create_device, create_group

from .helpers import rule

D1 = Principal.for_device("acme", "d1", ("floor",))
D2 = Principal.for_device("acme", "d2")
VIEWER = Principal.for_role("acme", "viewer")
OPERATOR = Principal.for_role("acme", "operator")
BASE = [
    rule("devices/{device}/#", id=1),
    rule("#", action="subscribe", subject_kind="role", subject_value="viewer", id=2),
    rule("#", action="publish", subject_kind="role", subject_value="operator", id=3),
]
EVERYONE = [D1, D2, VIEWER, OPERATOR]


def test_a_new_deny_shows_the_lost_rights_of_each_affected_principal() -> None:
    proposed = rule("devices/{device}/config", "deny", action="publish", id=50)
    report = preview(BASE, proposed=proposed, principals=EVERYONE)
    lost = {(c.principal, c.action, c.target) for c in report.losses}
    assert lost == {("device d1", "publish", "devices/d1/config"), ("device d2", "publish", "devices/d2/config")}
    assert report.gains == []
    assert report.principals_checked == 2  # the roles are not subjects of the rule
    line = next(c for c in report.changes if c.principal == "device d1").sentence()
    assert "device d1 loses publish on devices/d1/config" in line
    assert "deny rule 50 matches" in line


def test_a_new_allow_shows_gains() -> None:
    proposed = rule("shared/+/status", action="subscribe", subject_kind="group", subject_value="floor", id=51)
    report = preview(BASE, proposed=proposed, principals=EVERYONE)
    assert {(c.principal, c.action, c.target, c.change) for c in report.changes} == {
        ("device d1", "subscribe", "shared/+/status", "gains")}


def test_deleting_a_rule_shows_what_it_granted() -> None:
    report = preview(BASE, removed_id=3, principals=EVERYONE)
    assert {(c.principal, c.action, c.change) for c in report.changes} == {("role operator", "publish", "loses")}


def test_a_changed_qos_limit_is_a_change_not_a_loss() -> None:
    changed = rule("devices/{device}/#", max_qos=0, id=1)
    report = preview(BASE, proposed=changed, principals=[D1])
    assert report.losses == [] and report.changes
    publish = next(c for c in report.changes if c.action == "publish")
    assert publish.before == "allowed up to QoS 2, retain allowed"
    assert publish.after == "allowed up to QoS 0, retain allowed"


def test_a_rule_that_changes_nothing_reports_nothing() -> None:
    duplicate = rule("devices/{device}/status", id=52)
    report = preview(BASE, proposed=duplicate, principals=EVERYONE)
    assert report.changes == [] and report.lines() == ["no principal gains or loses any right"]


def test_live_subscriptions_that_would_be_dropped_or_become_partial() -> None:
    proposed = rule("devices/{device}/private/#", "deny", action="subscribe", id=53)
    live = [(D1, "devices/d1/#"), (D1, "devices/d1/private/keys"), (D1, "devices/d1/status"),
            (D2, "$share/g/devices/d2/private/x"), (VIEWER, "#")]
    report = preview(BASE, proposed=proposed, principals=EVERYONE, live=live)
    effects = {(s.principal, s.topic_filter, s.effect) for s in report.subscriptions}
    assert effects == {
        ("device d1", "devices/d1/#", "becomes partial"),
        ("device d1", "devices/d1/private/keys", "dropped"),
        ("device d2", "$share/g/devices/d2/private/x", "dropped"),
    }


def test_a_lower_max_qos_lowers_live_subscriptions() -> None:
    changed = rule("devices/{device}/#", max_qos=1, id=1)
    report = preview(BASE, proposed=changed, principals=EVERYONE, live=[(D1, "devices/d1/+", 2), (D1, "devices/d1/+", 0)])
    assert [(s.topic_filter, s.effect) for s in report.subscriptions] == [("devices/d1/+", "QoS lowered")]


def test_a_deny_elsewhere_keeps_a_partial_subscription_partial() -> None:
    rules = [*BASE, rule("devices/{device}/a/#", "deny", action="subscribe", id=60)]
    proposed = rule("devices/{device}/b/#", "deny", action="subscribe", id=61)
    report = preview(rules, proposed=proposed, principals=[D1], live=[(D1, "devices/d1/#")])
    assert report.subscriptions == []
    assert {c.target for c in report.changes if c.action == "subscribe"} == {"devices/d1/b/#"}


def test_preview_stays_fast_with_many_rules_and_devices() -> None:
    rules = list(BASE)
    rules += [rule(f"fleet/{i}/{{device}}/#", id=1000 + i) for i in range(1000)]
    principals = [Principal.for_device("acme", f"dev-{i}") for i in range(2000)]
    started = time.perf_counter()
    report = preview(rules, proposed=rule("fleet/7/{device}/cmd", "deny", action="publish", id=99999),
                     principals=principals, max_principals=len(principals))
    elapsed = time.perf_counter() - started
    assert len(report.losses) == 2000
    # Generous bound (a slow CI machine); the point is that it is not rules × devices.
    assert elapsed < 10, elapsed


@pytest.mark.django_db
def test_the_service_previews_a_proposed_and_a_deleted_rule(acme) -> None:
    floor = create_group(acme, "floor")
    create_device(acme, "d1", group=floor)
    create_device(acme, "d2")
    proposed = AclRule(tenant=acme, subject_kind="group", subject_group=floor, action="publish",
                       effect="deny", topic_filter="devices/{device}/cmd")
    report = preview_impact(acme, proposed=proposed)
    assert [(c.principal, c.target, c.change) for c in report.changes] == [("device d1", "devices/d1/cmd", "loses")]
    assert proposed.pk is None and not AclRule.objects.filter(topic_filter="devices/{device}/cmd").exists()
    operators = AclRule.objects.get(tenant=acme, subject_role="operator")
    report = preview_impact(acme, deleting=operators)
    assert {(c.principal, c.change) for c in report.changes} == {("role operator", "loses"), ("role admin", "loses"),
                                                                  ("role owner", "loses")}


@pytest.mark.django_db
def test_the_service_previews_a_rule_for_a_new_service_credential(acme) -> None:
    proposed = AclRule(tenant=acme, subject_kind="service", subject_service="ingest", action="subscribe",
                       topic_filter="devices/+/telemetry")
    report = preview_impact(acme, proposed=proposed)
    assert [(c.principal, c.change) for c in report.changes] == [("service ingest", "gains")]
    create_rule(acme, subject_kind="service", subject_service="ingest", action="subscribe",
                topic_filter="devices/+/telemetry")
    edited = AclRule.objects.get(subject_service="ingest")
    edited.enabled = False
    report = preview_impact(acme, proposed=edited)
    assert [(c.principal, c.change) for c in report.changes] == [("service ingest", "loses")]


def test_a_preview_over_too_many_principals_says_how_many_it_checked() -> None:
    principals = [Principal.for_device("acme", f"dev-{i:03}") for i in range(30)] + [VIEWER, OPERATOR]
    report = preview(BASE, proposed=rule("#", "deny", action="publish", subject_kind="all_devices", id=70),
                     principals=principals, max_principals=10)
    assert report.principals_affected == 30 and report.principals_checked == 10 and report.truncated
    assert {c.principal for c in report.changes} == {f"device dev-{i:03}" for i in range(10)}
    assert report.lines()[-1] == ("checked 10 of 30 affected principals "
                                  "(roles and services first, then devices in order)")


def test_roles_are_compared_before_devices_when_the_budget_is_short() -> None:
    rules = [*BASE, rule("shared/#", action="publish", id=80)]
    moved = rule("shared/#", action="publish", id=80, subject_kind="role", subject_value="viewer")
    report = preview(rules, proposed=moved, principals=[D1, D2, VIEWER], max_principals=1)
    assert report.principals_affected == 3 and report.principals_checked == 1
    assert {(c.principal, c.change) for c in report.changes} == {("role viewer", "gains")}
    full = preview(rules, proposed=moved, principals=[D1, D2, VIEWER])
    assert {c.principal for c in full.losses} == {"device d1", "device d2"} and not full.truncated
