"""A brute-force model of the ACL semantics, written independently of acl/ to check it.

Matching goes through regular expressions; containment, overlap and subscribe decisions
enumerate every topic over a finite universe that is large enough for the filters drawn in
the property tests: every literal level they use, one fresh name, one fresh `$` name, and
one level more than the longest filter.
"""

from __future__ import annotations

import functools
import itertools
import re

from acl.rules import RuleSpec

LITERALS = ["a", "b", "$a", "", "A", "\u00e9", "e\u0301"]
FRESH = ["z", "$z"]


def ref_match(topic_filter: str, topic: str) -> bool:
    if topic_filter[0] in "+#" and topic.startswith("$"):
        return False
    levels = topic_filter.split("/")
    tail = ""
    if levels[-1] == "#":
        levels = levels[:-1]
        tail = "(?:/.*)?" if levels else ".*"
    body = "/".join("[^/]*" if level == "+" else re.escape(level) for level in levels)
    return re.fullmatch(body + tail, topic, re.S) is not None


@functools.lru_cache(maxsize=4096)
def universe(values: frozenset[str], max_levels: int) -> tuple[str, ...]:
    topics: list[str] = []
    for count in range(1, max_levels + 1):
        for combo in itertools.product(sorted(values), repeat=count):
            topic = "/".join(combo)
            if topic:
                topics.append(topic)
    return tuple(topics)


def topics_for(*filters: str) -> tuple[str, ...]:
    """Every topic that can tell the filters apart: their literal levels plus fresh ones,
    up to one level more than the longest filter."""
    levels = [f.split("/") for f in filters]
    literals = {level for split in levels for level in split if level not in ("+", "#")}
    longest = max(len(split) for split in levels)
    return universe(frozenset(literals | set(FRESH)), longest + 1)


def ref_contains(outer: str, inner: str) -> bool:
    return all(ref_match(outer, t) for t in topics_for(outer, inner) if ref_match(inner, t))


def ref_overlaps(a: str, b: str) -> bool:
    return any(ref_match(a, t) and ref_match(b, t) for t in topics_for(a, b))


def ref_publish(rules: list[tuple[RuleSpec, str]], topic: str, qos: int, retain: bool) -> bool:
    """rules: (spec, effective filter) already selected for the principal."""
    hits = [(spec, f) for spec, f in rules if spec.publishes and ref_match(f, topic)]
    if any(spec.effect == "deny" for spec, _ in hits):
        return False
    return any(
        (spec.max_qos is None or qos <= spec.max_qos) and (spec.allow_retain or not retain)
        for spec, _ in hits
    )


def ref_subscribe(rules: list[tuple[RuleSpec, str]], topic_filter: str, qos: int) -> tuple[str, int | None]:
    """(outcome, granted qos) by enumeration."""
    subs = [(spec, f) for spec, f in rules if spec.subscribes]
    topics = [t for t in topics_for(topic_filter, *(f for _, f in subs)) if ref_match(topic_filter, t)]
    denies = [f for spec, f in subs if spec.effect == "deny"]
    if any(all(ref_match(f, t) for t in topics) for f in denies):
        return "refused", None
    covering = [spec for spec, f in subs
                if spec.effect == "allow" and all(ref_match(f, t) for t in topics)]
    if not covering:
        return "refused", None
    cap = max(2 if spec.max_qos is None else spec.max_qos for spec in covering)
    outcome = "partial" if any(ref_match(f, t) for f in denies for t in topics) else "granted"
    return outcome, min(qos, cap)
