"""Explain a decision: the outcome, the rules that made it, and why (pure, no Django)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .compiler import Matcher, compile_rules
from .decisions import Decision
from .rules import Principal, RuleSpec
from .topics import SHARE_PREFIX, TopicError, split_shared

PUBLISH = "publish"
SUBSCRIBE = "subscribe"
WILL = "will"
DELIVER = "deliver"
EXPLAIN_ACTIONS = (PUBLISH, SUBSCRIBE, WILL, DELIVER)


@dataclass(frozen=True)
class RuleLine:
    """One rule as it applied to the principal: its spec and its filter after substitution."""

    spec: RuleSpec
    effective_filter: str

    def describe(self) -> str:
        spec = self.spec
        text = f"rule {spec.id}: {spec.effect} {spec.action} {self.effective_filter}"
        if self.effective_filter != spec.topic_filter:
            text += f" (from {spec.topic_filter})"
        limits = []
        if spec.max_qos is not None:
            limits.append(f"max QoS {spec.max_qos}")
        if not spec.allow_retain:
            limits.append("no retain")
        return text + (f" [{', '.join(limits)}]" if limits else "")


@dataclass(frozen=True)
class Explanation:
    principal: Principal
    action: str
    target: str
    qos: int
    retain: bool
    decision: Decision
    deciding: tuple[RuleLine, ...]
    considered: tuple[RuleLine, ...]
    skipped: tuple[tuple[RuleSpec, str], ...]
    notes: tuple[str, ...] = field(default=())
    version: int = 0

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    def lines(self) -> list[str]:
        """The explanation as sentences, for the admin page and the CLI."""
        out = [f"{self.principal.label} {self.action} {self.target!r}: "
               f"{self.decision.outcome} — {self.decision.reason}"]
        if self.decision.qos is not None:
            out.append(f"granted QoS {self.decision.qos}")
        out.extend(self.notes)
        out.extend(f"deciding {line.describe()}" for line in self.deciding)
        out.extend(f"skipped rule {spec.id} ({spec.topic_filter}): {why}" for spec, why in self.skipped)
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "principal": self.principal.label, "action": self.action, "target": self.target,
            "qos": self.qos, "retain": self.retain, "outcome": self.decision.outcome,
            "allowed": self.decision.allowed, "code": self.decision.code,
            "reason": self.decision.reason, "granted_qos": self.decision.qos,
            "deciding_rules": [line.spec.id for line in self.deciding],
            "considered_rules": [line.spec.id for line in self.considered],
            "skipped_rules": [{"id": spec.id, "why": why} for spec, why in self.skipped],
            "notes": list(self.notes), "rules_version": self.version, "lines": self.lines(),
        }


def explain(
    principal: Principal,
    action: str,
    topic_or_filter: str,
    qos: int = 0,
    retain: bool = False,
    *,
    rules: Iterable[RuleSpec] = (),
    version: int = 0,
    matcher: Matcher | None = None,
) -> Explanation:
    """Decide like the broker would and say why. Pass `rules`, or a `matcher` already built."""
    if action not in EXPLAIN_ACTIONS:
        raise ValueError(f"Unknown action {action!r}; use one of {', '.join(EXPLAIN_ACTIONS)}.")
    if matcher is None:
        matcher = compile_rules(principal, rules, version)
    notes: list[str] = []
    if action == SUBSCRIBE:
        decision = matcher.subscribe(topic_or_filter, qos)
        try:
            share, inner = split_shared(topic_or_filter)
        except TopicError:
            share, inner = None, topic_or_filter
        if share is not None:
            notes.append(f"shared subscription (group {share!r}): judged on its filter {inner!r}")
        if decision.outcome == "refused" and decision.code == "no_allow" and not decision.rule_ids:
            try:
                partly = matcher.overlapping_allows(topic_or_filter)
            except TopicError:
                partly = ()
            if partly:
                notes.append("allow rule " + ", ".join(map(str, partly))
                             + " matches only part of the filter; subscribe to a narrower filter")
        if decision.partial:
            notes.append("every delivery on this subscription is checked against the deny rules")
    elif action == DELIVER:
        decision = matcher.check_delivery(topic_or_filter)
    else:
        decision = matcher.publish(topic_or_filter, qos, retain)
        if action == WILL:
            notes.append("a will is judged at CONNECT as a publish to its topic")
    if topic_or_filter.startswith("$") and not topic_or_filter.startswith(SHARE_PREFIX):
        notes.append("$ topics are reachable only through rules that name their first level")
    lines = {rule.id: RuleLine(rule.spec, rule.topic_filter) for rule in matcher.rules}
    deciding = tuple(lines[rule_id] for rule_id in decision.rule_ids if rule_id in lines)
    return Explanation(
        principal=principal, action=action, target=topic_or_filter, qos=qos, retain=retain,
        decision=decision, deciding=deciding, considered=tuple(lines.values()),
        skipped=matcher.skipped, notes=tuple(notes), version=matcher.version,
    )
