"""Matching, containment, overlap and decisions agree with a brute-force reference."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from acl.compiler import compile_rules
from acl.rules import Principal
from acl.topics import contains, matches, overlaps

from .reference import ref_contains, ref_match, ref_overlaps, ref_publish, ref_subscribe
from .strategies import filters, rule_sets, topics

DEVICE = Principal.for_device("acme", "d1")


@settings(deadline=None)
@given(filters(), topics())
def test_matching_agrees_with_the_reference(topic_filter: str, topic: str) -> None:
    assert matches(topic_filter, topic) == ref_match(topic_filter, topic)


@settings(max_examples=300, deadline=None)
@given(filters(), filters())
def test_containment_agrees_with_the_reference(outer: str, inner: str) -> None:
    assert contains(outer, inner) == ref_contains(outer, inner)


@settings(max_examples=300, deadline=None)
@given(filters(), filters())
def test_overlap_agrees_with_the_reference(a: str, b: str) -> None:
    assert overlaps(a, b) == ref_overlaps(a, b)
    assert overlaps(a, b) == overlaps(b, a)


@settings(max_examples=300, deadline=None)
@given(rule_sets(), topics(), st.sampled_from([0, 1, 2]), st.booleans())
def test_publish_decisions_agree_with_the_reference(rules, topic, qos, retain) -> None:
    decision = compile_rules(DEVICE, rules).publish(topic, qos, retain)
    expected = ref_publish([(r, r.topic_filter) for r in rules], topic, qos, retain)
    assert decision.allowed == expected, decision


@settings(max_examples=200, deadline=None)
@given(rule_sets(), filters(), st.sampled_from([0, 1, 2]))
def test_subscribe_decisions_agree_with_the_reference(rules, topic_filter, qos) -> None:
    decision = compile_rules(DEVICE, rules).subscribe(topic_filter, qos)
    outcome, granted_qos = ref_subscribe([(r, r.topic_filter) for r in rules], topic_filter, qos)
    assert decision.outcome == outcome, decision
    assert decision.qos == granted_qos


@settings(max_examples=200, deadline=None)
@given(rule_sets(), filters(), topics())
def test_the_delivery_check_refuses_exactly_the_denied_topics(rules, topic_filter, topic) -> None:
    matcher = compile_rules(DEVICE, rules)
    denied = any(r.subscribes and r.effect == "deny" and ref_match(r.topic_filter, topic) for r in rules)
    assert matcher.deliverable(topic) == (not denied)


@settings(max_examples=300, deadline=None)
@given(rule_sets(), filters())
def test_the_trie_finds_exactly_the_overlapping_and_covering_rules(rules, topic_filter) -> None:
    matcher = compile_rules(DEVICE, rules)
    subscribing = [r for r in rules if r.subscribes]
    allows = [r for r in subscribing if r.effect == "allow"]
    denies = [r for r in subscribing if r.effect == "deny"]
    assert set(matcher.overlapping_allows(topic_filter)) == {
        r.id for r in allows if ref_overlaps(r.topic_filter, topic_filter)}
    assert set(matcher.covering_allows(topic_filter)) == {
        r.id for r in allows if ref_contains(r.topic_filter, topic_filter)}
    assert set(matcher.overlapping_denies(topic_filter)) == {
        r.id for r in denies if ref_overlaps(r.topic_filter, topic_filter)}
