"""Impact preview: who gains or loses which rights if a rule is created, changed or deleted.

Pure Python. For each principal the changed rule applies to (before or after), it compares
decisions over a sample of topics and filters derived from the changed rule's filter and from
the principal's rules that overlap it: a decision can only change where the changed rule
matches, and there only rules that overlap it take part. For live subscriptions reported by
the broker it compares the subscribe decision itself. Only candidate rules are compiled, so a
preview stays fast in a tenant with thousands of rules and devices.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .compiler import CompiledRule, Matcher, RuleTrie, compile_rules, parsed_template
from .decisions import Decision
from .rules import DENY, Principal, RuleSpec, applies_to
from .substitution import Variable, substitute
from .topics import levels_match, levels_overlap, split_shared

SAMPLE_LEVEL = "x-sample"
_COMBOS = [(qos, retain) for qos in (0, 1, 2) for retain in (False, True)]


@dataclass(frozen=True)
class RightChange:
    principal: str
    action: str  # "publish" or "subscribe"
    target: str  # a topic (publish) or a filter (subscribe)
    before: str
    after: str
    change: str  # "gains", "loses" or "changes"

    def sentence(self) -> str:
        return f"{self.principal} {self.change} {self.action} on {self.target}: {self.before} → {self.after}"


@dataclass(frozen=True)
class SubscriptionImpact:
    principal: str
    topic_filter: str
    before: str
    after: str
    effect: str  # "dropped", "becomes partial", "becomes granted", "QoS lowered", "QoS raised"

    def sentence(self) -> str:
        return f"{self.principal} {self.topic_filter}: {self.effect} ({self.before} → {self.after})"


@dataclass
class ImpactReport:
    changes: list[RightChange] = field(default_factory=list)
    subscriptions: list[SubscriptionImpact] = field(default_factory=list)
    principals_affected: int = 0
    principals_checked: int = 0
    samples_checked: int = 0
    seconds: float = 0.0

    @property
    def truncated(self) -> bool:
        """True when only some affected principals were compared (see `preview`'s budget)."""
        return self.principals_checked < self.principals_affected

    @property
    def gains(self) -> list[RightChange]:
        return [c for c in self.changes if c.change == "gains"]

    @property
    def losses(self) -> list[RightChange]:
        return [c for c in self.changes if c.change == "loses"]

    def lines(self) -> list[str]:
        out = [c.sentence() for c in self.changes]
        out.extend(s.sentence() for s in self.subscriptions)
        if not out:
            out.append("no principal gains or loses any right")
        if self.truncated:
            out.append(f"checked {self.principals_checked} of {self.principals_affected} affected "
                       "principals (roles and services first, then devices in order)")
        return out


def _loose_levels(spec: RuleSpec) -> tuple[str, ...] | None:
    """The template with every variable widened to `+`: overlaps whatever the rule can become."""
    levels = parsed_template(spec.topic_filter)
    if isinstance(levels, str):
        return None
    return tuple("+" if isinstance(level, Variable) else level for level in levels)


def _sample_topics(levels: tuple[str, ...]) -> list[str]:
    base = [SAMPLE_LEVEL if level == "+" else level for level in levels if level != "#"]
    if levels[-1] != "#":
        return ["/".join(base)]
    samples = ["/".join([*base, SAMPLE_LEVEL])]
    if base:
        samples.append("/".join(base))
    return samples


def _publish_rights(matcher: Matcher, topic: str) -> tuple[frozenset[tuple[int, bool]], Decision]:
    allowed = frozenset(combo for combo in _COMBOS if matcher.publish(topic, *combo).allowed)
    return allowed, matcher.publish(topic, 0, False)


def _describe_publish(allowed: frozenset[tuple[int, bool]], decision: Decision) -> str:
    if not allowed:
        return f"denied ({decision.reason})"
    top = max(qos for qos, _ in allowed)
    retain = "retain allowed" if any(r for _, r in allowed) else "no retain"
    return f"allowed up to QoS {top}, {retain}"


def _describe_subscribe(decision: Decision) -> str:
    if not decision.allowed:
        return f"refused ({decision.reason})"
    return f"{decision.outcome} at QoS {decision.qos}"


def _rank(decision: Decision) -> int:
    return {"refused": 0, "partial": 1, "granted": 2}.get(decision.outcome, 0)


class _Side:
    """The rules before or after the change, with matchers compiled on demand.

    All rules sit in one trie keyed by their templates with variables widened to `+`, so the
    rules that can touch some filters are found by a trie walk instead of a scan.
    """

    def __init__(self, rules: Sequence[RuleSpec], version: int) -> None:
        loose = ((spec, _loose_levels(spec)) for spec in rules)
        self.trie = RuleTrie(CompiledRule(spec, levels) for spec, levels in loose if levels is not None)
        self.version = version

    def candidates(self, principal: Principal, near: list[tuple[str, ...]]) -> dict[int, RuleSpec]:
        """The principal's rules that may overlap one of the `near` filters."""
        found: dict[int, RuleSpec] = {}
        for target in near:
            for rule in self.trie.overlapping(target):
                if applies_to(rule.spec, principal):
                    found[rule.spec.id] = rule.spec
        return found

    def matcher(self, principal: Principal, near: list[tuple[str, ...]]) -> Matcher:
        return compile_rules(principal, self.candidates(principal, near).values(), self.version)


def _effective(spec: RuleSpec | None, principal: Principal) -> tuple[str, ...] | None:
    if spec is None or not applies_to(spec, principal):
        return None
    parsed = parsed_template(spec.topic_filter)
    if isinstance(parsed, str):
        return None
    return substitute(parsed, principal)[0]


def preview(
    rules: Sequence[RuleSpec],
    *,
    proposed: RuleSpec | None = None,
    removed_id: int | None = None,
    principals: Iterable[Principal],
    live: Iterable[tuple[Principal, str] | tuple[Principal, str, int]] = (),
    version: int = 0,
    max_principals: int = 250,
    max_filters: int = 64,
    budget_seconds: float = 5.0,
) -> ImpactReport:
    """Compare rights before and after replacing (or adding, or removing) one rule.

    `proposed` is a new rule (an id not in `rules`) or a changed one (same id); `removed_id`
    removes a rule. `live` lists the broker's current subscriptions as (principal, filter) or
    (principal, filter, requested QoS). At most `max_principals` affected principals are
    compared in detail (roles and services first, then devices in the order given), each over
    at most `max_filters` sample filters, and comparing stops once `budget_seconds` have
    passed (a change to `#` compiles every rule of every principal); the report then says how
    many were checked. Live subscriptions are all checked.
    """
    started = time.perf_counter()
    target_id = proposed.id if proposed is not None else removed_id
    old = next((rule for rule in rules if rule.id == target_id), None) if target_id is not None else None
    after_rules = [rule for rule in rules if old is None or rule.id != old.id]
    if proposed is not None:
        after_rules.append(proposed)
    before = _Side(rules, version)
    after = _Side(after_rules, version + 1)
    report = ImpactReport()
    affected: dict[Principal, list[tuple[str, ...]]] = {}
    for principal in principals:
        changed = [levels for levels in (_effective(old, principal), _effective(proposed, principal)) if levels]
        if changed:
            affected[principal] = changed
    report.principals_affected = len(affected)
    ordered = sorted(affected, key=lambda p: p.kind == "device")  # stable: keeps device order
    for principal in ordered[:max_principals]:
        if report.principals_checked and time.perf_counter() - started > budget_seconds:
            break
        report.principals_checked += 1
        _compare_principal(principal, affected[principal], before, after, report, max_filters)
    for item in live:
        principal, topic_filter = item[0], item[1]
        qos = item[2] if len(item) > 2 else 2
        changed_levels = affected.get(principal)
        if changed_levels is None:
            continue
        try:
            _, inner = split_shared(topic_filter)
        except ValueError:
            continue
        levels = tuple(inner.split("/"))
        if not any(levels_overlap(levels, c) for c in changed_levels):
            continue
        was = before.matcher(principal, [levels]).subscribe(topic_filter, qos)
        now = after.matcher(principal, [levels]).subscribe(topic_filter, qos)
        effect = _subscription_effect(was, now)
        if effect:
            report.subscriptions.append(SubscriptionImpact(
                principal.label, topic_filter, _describe_subscribe(was), _describe_subscribe(now), effect))
    report.seconds = time.perf_counter() - started
    return report


def _subscription_effect(was: Decision, now: Decision) -> str:
    if was.allowed and not now.allowed:
        return "dropped"
    if was.outcome == "granted" and now.outcome == "partial":
        return "becomes partial"
    if was.outcome == "partial" and now.outcome == "granted":
        return "becomes granted"
    if not was.allowed and now.allowed:
        return "would now be allowed"
    if was.allowed and now.allowed and was.qos != now.qos:
        return "QoS lowered" if (now.qos or 0) < (was.qos or 0) else "QoS raised"
    return ""


def _compare_principal(
    principal: Principal, changed: list[tuple[str, ...]], before: _Side, after: _Side,
    report: ImpactReport, max_filters: int,
) -> None:
    # Sample filters: the changed rule's, then the principal's rules overlapping it (denies
    # first, as they carve the exceptions), up to a budget per principal.
    filters: dict[tuple[str, ...], None] = dict.fromkeys(changed)
    denies: list[tuple[str, ...]] = []
    others: list[tuple[str, ...]] = []
    for side in (before, after):
        for spec in side.candidates(principal, changed).values():
            levels = _effective(spec, principal)
            if levels is not None and any(levels_overlap(levels, c) for c in changed):
                (denies if spec.effect == DENY else others).append(levels)
    for levels in [*denies, *others]:
        if len(filters) >= max_filters:
            break
        filters.setdefault(levels)
    # A sample filter's subscribe decision also depends on deny rules that overlap it but
    # not the changed rule (they make it partial on both sides), so compile against them all.
    near = list(filters)
    was = before.matcher(principal, near)
    now = after.matcher(principal, near)
    topics: dict[str, None] = {}
    for levels in filters:
        for topic in _sample_topics(levels):
            if topic and any(levels_match(c, topic.split("/")) for c in changed):
                topics.setdefault(topic)
    label = principal.label
    for topic in topics:
        report.samples_checked += 1
        rights_was, decision_was = _publish_rights(was, topic)
        rights_now, decision_now = _publish_rights(now, topic)
        if rights_was != rights_now:
            change = "gains" if not rights_was else "loses" if not rights_now else "changes"
            report.changes.append(RightChange(
                label, "publish", topic, _describe_publish(rights_was, decision_was),
                _describe_publish(rights_now, decision_now), change))
    for levels in filters:
        report.samples_checked += 1
        topic_filter = "/".join(levels)
        sub_was, sub_now = was.subscribe(topic_filter, 2), now.subscribe(topic_filter, 2)
        if (sub_was.outcome, sub_was.qos) != (sub_now.outcome, sub_now.qos):
            rank_was, rank_now = _rank(sub_was), _rank(sub_now)
            change = "gains" if rank_now > rank_was and not sub_was.allowed else (
                "loses" if rank_now < rank_was and not sub_now.allowed else "changes")
            report.changes.append(RightChange(
                label, "subscribe", topic_filter, _describe_subscribe(sub_was),
                _describe_subscribe(sub_now), change))
