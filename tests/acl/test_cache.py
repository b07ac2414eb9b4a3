"""The per-session decision cache gives the matcher's answers, stays bounded, and rebinds."""

from __future__ import annotations

from acl.compiler import DecisionCache, compile_rules
from acl.rules import Principal

from .helpers import rule

D1 = Principal.for_device("acme", "d1")


def test_cached_decisions_equal_fresh_ones_for_every_qos_and_retain() -> None:
    matcher = compile_rules(D1, [rule("a/#", max_qos=1, allow_retain=False), rule("a/x", "deny")])
    cache = DecisionCache(matcher)
    for _ in range(2):
        for topic in ["a/b", "a/x", "b"]:
            for qos in (0, 1, 2):
                for retain in (False, True):
                    assert cache.publish(topic, qos, retain) == matcher.publish(topic, qos, retain)
            for qos in (0, 1, 2):
                assert cache.subscribe(topic, qos) == matcher.subscribe(topic, qos)
            assert cache.deliverable(topic) == matcher.deliverable(topic)


def test_the_cache_stays_bounded() -> None:
    cache = DecisionCache(compile_rules(D1, [rule("#")]), maxsize=8)
    for index in range(100):
        cache.publish(f"t/{index}")
        cache.subscribe(f"t/{index}")
        cache.deliverable(f"t/{index}")
    assert len(cache) <= 3 * 8


def test_rebinding_to_new_rules_forgets_old_decisions() -> None:
    cache = DecisionCache(compile_rules(D1, [rule("a")], version=1))
    assert cache.publish("a").allowed
    cache.rebind(compile_rules(D1, [rule("a", "deny")], version=2))
    assert not cache.publish("a").allowed
    assert cache.matcher.version == 2


def test_invalid_qos_is_refused_and_not_cached() -> None:
    cache = DecisionCache(compile_rules(D1, [rule("#")]))
    assert cache.publish("a", 0).allowed and cache.publish("a", 2, True).allowed
    assert cache.subscribe("a", 2).allowed
    for bad in (3, -1, -2):
        assert not cache.publish("a", bad).allowed
        assert not cache.publish("a", bad, True).allowed
        assert not cache.subscribe("a", bad).allowed
