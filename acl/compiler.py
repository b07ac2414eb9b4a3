"""Compile one principal's rules into an immutable matcher, and a per-session decision cache.

The matcher is a trie over topic levels: literal children, one `+` child, and at each node the
rules that end there or continue with `#`. A decision walks the topic's levels once, so its
cost follows the number of levels (and the few `+` branches on the way), not the number of
rules. Pure Python, no Django: the broker compiles rules it loaded into memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from broker.mqtt import topics as mqtt_topics
from broker.mqtt import trie

from . import decisions as d
from .rules import DENY, Principal, RuleSpec, applies_to
from .substitution import Level, TemplateError, parse_template, substitute
from .topics import TopicError, canonical_levels, split_shared, validate_filter


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its variables filled in for one principal."""

    spec: RuleSpec
    levels: tuple[str, ...]

    @property
    def id(self) -> int:
        return self.spec.id

    @property
    def deny(self) -> bool:
        return self.spec.effect == DENY

    @property
    def topic_filter(self) -> str:
        return "/".join(self.levels)

    def permits(self, qos: int, retain: bool) -> bool:
        spec = self.spec
        return (spec.max_qos is None or qos <= spec.max_qos) and (spec.allow_retain or not retain)


class _Node:
    __slots__ = ("children", "plus", "end", "hash", "subtree", "below_all", "below_plain")

    def __init__(self) -> None:
        # Every child by its level, `+` included (the path helpers in broker.mqtt.trie make
        # them); `plus` is the `+` child again, set once built, for the walks below.
        self.children: dict[str, _Node] = {}
        self.plus: _Node | None = None
        self.end: list[CompiledRule] = []  # filters that stop at this node
        self.hash: list[CompiledRule] = []  # filters that continue with `#` below this node
        # Filled once the trie is built (see RuleTrie._summarise): every rule at or under
        # this node, every rule under its children, and (root only) the same without `$` levels.
        self.subtree: tuple[CompiledRule, ...] = ()
        self.below_all: tuple[CompiledRule, ...] = ()
        self.below_plain: tuple[CompiledRule, ...] = ()

    def below(self, skip_dollar: bool) -> tuple[CompiledRule, ...]:
        """Every rule stored under this node's children (for a `#` in the asked filter)."""
        return self.below_plain if skip_dollar else self.below_all


class RuleTrie:
    """Rule filters by level, with `#` rules kept at the parent of their `#`.

    Its walks are its own: `matching` is the kind of walk the broker's subscription trie
    makes per message (filters stored, a name asked), but over this node shape and
    collecting rules; `containing` and `overlapping` compare a filter with filters, which
    no other tree does. Only the paths (broker.mqtt.trie) are shared.
    """

    __slots__ = ("root", "size")

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self.root = _Node()
        self.size = 0
        for rule in rules:
            self._insert(rule)
        self._summarise()

    def _summarise(self) -> None:
        """Precompute the subtree tuples bottom-up, without recursion (a filter may be deep).

        Done once here so that the matcher never changes after compilation and can be shared.
        """
        order: list[_Node] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            node.plus = node.children.get("+")
            order.append(node)
            stack.extend(node.children.values())
        for node in reversed(order):
            plus = node.plus
            below: list[CompiledRule] = []
            for child in node.children.values():
                if child is not plus:
                    below.extend(child.subtree)
            if plus is not None:
                below.extend(plus.subtree)
            node.below_all = tuple(below)
            node.subtree = (*node.end, *node.hash, *below)
        root = self.root
        plain: list[CompiledRule] = []
        for key, child in root.children.items():
            if not key.startswith("$") and child is not root.plus:
                plain.extend(child.subtree)
        if root.plus is not None:
            plain.extend(root.plus.subtree)
        root.below_plain = tuple(plain)

    def _insert(self, rule: CompiledRule) -> None:
        levels = canonical_levels(rule.levels)
        if levels and levels[-1] == "#":
            trie.find_or_make(self.root, levels[:-1], _Node).hash.append(rule)
        else:
            trie.find_or_make(self.root, levels, _Node).end.append(rule)
        self.size += 1

    def matching(self, levels: list[str]) -> list[CompiledRule]:
        """Rules whose filter matches the topic with these levels."""
        out: list[CompiledRule] = []
        frontier = [self.root]
        dollar = levels[0].startswith("$")
        for level in levels:
            step: list[_Node] = []
            for node in frontier:
                if node.hash and not dollar:
                    out.extend(node.hash)
                child = node.children.get(level)
                if child is not None:
                    step.append(child)
                if node.plus is not None and not dollar:
                    step.append(node.plus)
            # Only the first level is protected from wildcards.
            dollar = False
            if not step:
                return out
            frontier = step
        for node in frontier:
            out.extend(node.end)
            out.extend(node.hash)
        return out

    def containing(self, levels: list[str] | tuple[str, ...]) -> list[CompiledRule]:
        """Rules whose filter contains the filter with these levels."""
        levels = canonical_levels(levels)
        out: list[CompiledRule] = []
        frontier = [self.root]
        for k, level in enumerate(levels):
            dollar_literal = k == 0 and level not in ("+", "#") and level.startswith("$")
            step: list[_Node] = []
            for node in frontier:
                if node.hash and not dollar_literal:
                    out.extend(node.hash)
                if level == "#":
                    # No topic has zero levels, so at the top `+/#` covers what `#` covers.
                    if k == 0 and node.plus is not None:
                        out.extend(node.plus.hash)
                    continue
                if level != "+":
                    child = node.children.get(level)
                    if child is not None:
                        step.append(child)
                    if node.plus is not None and not dollar_literal:
                        step.append(node.plus)
                elif node.plus is not None:
                    step.append(node.plus)
            if level == "#" or not step:
                return out
            frontier = step
        for node in frontier:
            out.extend(node.end)
            out.extend(node.hash)
        return out

    def overlapping(self, levels: list[str] | tuple[str, ...]) -> list[CompiledRule]:
        """Rules whose filter matches at least one topic the asked filter matches."""
        levels = canonical_levels(levels)
        out: list[CompiledRule] = []
        frontier = [self.root]
        for k, level in enumerate(levels):
            dollar_literal = k == 0 and level not in ("+", "#") and level.startswith("$")
            step: list[_Node] = []
            for node in frontier:
                if node.hash and not dollar_literal:
                    out.extend(node.hash)
                if level == "#":
                    if k > 0:
                        out.extend(node.end)
                    out.extend(node.below(skip_dollar=k == 0))
                    continue
                if level == "+":
                    plus = node.plus
                    for key, child in node.children.items():
                        if child is not plus and not (k == 0 and key.startswith("$")):
                            step.append(child)
                else:
                    found = node.children.get(level)
                    if found is not None:
                        step.append(found)
                    if dollar_literal:
                        continue
                if node.plus is not None:
                    step.append(node.plus)
            if level == "#" or not step:
                return out
            frontier = step
        for node in frontier:
            out.extend(node.end)
            out.extend(node.hash)
        return out


def _sorted_ids(rules: Iterable[CompiledRule]) -> tuple[int, ...]:
    return tuple(sorted({rule.id for rule in rules}))


_TOPIC_PROBLEMS = {
    mqtt_topics.EMPTY: "invalid topic: empty",
    mqtt_topics.WILDCARD_IN_NAME: "invalid topic: wildcards are not allowed in a topic name",
    mqtt_topics.NUL: "invalid topic: contains NUL",
    mqtt_topics.TOO_LONG: f"invalid topic: longer than {mqtt_topics.MAX_TOPIC_BYTES} bytes",
}


def _topic_problem(topic: str) -> str | None:
    if not isinstance(topic, str):
        return _TOPIC_PROBLEMS[mqtt_topics.EMPTY]
    problem = mqtt_topics.topic_name_problem(topic)
    return None if problem is None else _TOPIC_PROBLEMS[problem]


class Matcher:
    """The compiled, immutable rules of one principal. Safe to share between threads."""

    __slots__ = ("principal", "version", "rules", "skipped", "_publish", "_sub_allow", "_sub_deny")

    def __init__(
        self, principal: Principal, rules: tuple[CompiledRule, ...],
        skipped: tuple[tuple[RuleSpec, str], ...], version: int,
    ) -> None:
        self.principal = principal
        self.version = version
        self.rules = rules
        self.skipped = skipped
        self._publish = RuleTrie(rule for rule in rules if rule.spec.publishes)
        self._sub_allow = RuleTrie(rule for rule in rules if rule.spec.subscribes and not rule.deny)
        self._sub_deny = RuleTrie(rule for rule in rules if rule.spec.subscribes and rule.deny)

    def publish(self, topic: str, qos: int = 0, retain: bool = False) -> d.Decision:
        """Decide a PUBLISH (and a will at CONNECT) to a topic name."""
        problem = _topic_problem(topic)
        if problem is not None:
            return d.invalid(d.DENIED, problem)
        if qos not in (0, 1, 2):
            return d.invalid(d.DENIED, f"invalid QoS {qos!r}")
        found = self._publish.matching(topic.split("/"))
        if not found:
            return d.no_allow(d.DENIED)
        denies = [rule for rule in found if rule.deny]
        if denies:
            return d.deny_rule(d.DENIED, _sorted_ids(denies))
        fitting = [rule for rule in found if rule.permits(qos, retain)]
        if fitting:
            return d.allowed(_sorted_ids(fitting))
        allows = _sorted_ids(found)
        qos_ok = [rule for rule in found if rule.spec.max_qos is None or qos <= rule.spec.max_qos]
        if not qos_ok:
            best = max(rule.spec.max_qos or 0 for rule in found)
            return d.qos_above_max(qos, best, allows)
        return d.retain_not_allowed(_sorted_ids(qos_ok))

    will = publish

    def subscribe(self, topic_filter: str, qos: int = 0) -> d.Decision:
        """Decide a SUBSCRIBE to a filter; `$share/NAME/F` is judged on F."""
        try:
            _, inner = split_shared(topic_filter)
            validate_filter(inner)
        except (TopicError, TypeError) as exc:
            return d.invalid(d.REFUSED, f"invalid filter: {exc}")
        if qos not in (0, 1, 2):
            return d.invalid(d.REFUSED, f"invalid QoS {qos!r}")
        levels = inner.split("/")
        overlapping_denies = self._sub_deny.overlapping(levels)
        if overlapping_denies:
            covering = self._sub_deny.containing(levels)
            if covering:
                return d.deny_rule(d.REFUSED, _sorted_ids(covering))
        allows = self._sub_allow.containing(levels)
        if not allows:
            return d.not_contained(())
        cap = max(2 if rule.spec.max_qos is None else rule.spec.max_qos for rule in allows)
        granted_qos = min(qos, cap)
        best = _sorted_ids(
            rule for rule in allows if (2 if rule.spec.max_qos is None else rule.spec.max_qos) >= granted_qos
        )
        if overlapping_denies:
            return d.partially(granted_qos, best, _sorted_ids(overlapping_denies))
        return d.granted(granted_qos, best, qos)

    def deliverable(self, topic: str) -> bool:
        """Per-delivery check for a partial grant: False if a subscribe deny rule matches the topic."""
        return not self._sub_deny.matching(topic.split("/"))

    def check_delivery(self, topic: str) -> d.Decision:
        """`deliverable` with the reason, for explain."""
        denies = self._sub_deny.matching(topic.split("/"))
        if denies:
            return d.deny_rule(d.DENIED, _sorted_ids(denies))
        return d.Decision(d.ALLOWED, d.MATCHED, "no deny rule matches the delivered topic")

    def overlapping_allows(self, topic_filter: str) -> tuple[int, ...]:
        """Subscribe allow rules that share some topic with the (valid) filter."""
        _, inner = split_shared(topic_filter)
        return _sorted_ids(self._sub_allow.overlapping(inner.split("/")))

    def covering_allows(self, topic_filter: str) -> tuple[int, ...]:
        """Subscribe allow rules whose filter contains the (valid) filter."""
        _, inner = split_shared(topic_filter)
        return _sorted_ids(self._sub_allow.containing(inner.split("/")))

    def overlapping_denies(self, topic_filter: str) -> tuple[int, ...]:
        """Subscribe deny rules that share some topic with the (valid) filter."""
        _, inner = split_shared(topic_filter)
        return _sorted_ids(self._sub_deny.overlapping(inner.split("/")))


@lru_cache(maxsize=65536)
def parsed_template(template: str) -> tuple[Level, ...] | str:
    """The parsed template, or why it is invalid (memoised: every principal shares templates)."""
    try:
        return parse_template(template)
    except TemplateError as exc:
        return f"invalid filter template: {exc}"


def compile_rules(principal: Principal, rules: Iterable[RuleSpec], version: int = 0) -> Matcher:
    """Select the rules written for `principal`, fill their variables, build its matcher.

    Rules of another tenant, disabled rules and rules for other subjects are left out; rules
    whose variables have no safe value for this principal are kept in `skipped` with why.
    """
    compiled: list[CompiledRule] = []
    skipped: list[tuple[RuleSpec, str]] = []
    for spec in rules:
        if not applies_to(spec, principal):
            continue
        parsed = parsed_template(spec.topic_filter)
        if isinstance(parsed, str):
            skipped.append((spec, parsed))
            continue
        levels, why = substitute(parsed, principal)
        if levels is None:
            skipped.append((spec, why))
            continue
        compiled.append(CompiledRule(spec, levels))
    return Matcher(principal, tuple(compiled), tuple(skipped), version)


class DecisionCache:
    """A per-connection memo of decisions, at most `maxsize` entries per kind.

    The broker keeps one per session. It is emptied when full (cheap and bounded; hot topics
    come back at once) and when `rebind` hands it a matcher compiled from newer rules.
    """

    __slots__ = ("matcher", "maxsize", "_publish", "_subscribe", "_delivery")

    def __init__(self, matcher: Matcher, maxsize: int = 1024) -> None:
        self.matcher = matcher
        self.maxsize = maxsize
        self._publish: dict[str, list[d.Decision | None]] = {}
        self._subscribe: dict[str, list[d.Decision | None]] = {}
        self._delivery: dict[str, bool] = {}

    def rebind(self, matcher: Matcher) -> None:
        """Use a freshly compiled matcher; forget every decision made with the old one."""
        if matcher is not self.matcher:
            self.matcher = matcher
            self.clear()

    def clear(self) -> None:
        self._publish.clear()
        self._subscribe.clear()
        self._delivery.clear()

    def __len__(self) -> int:
        return len(self._publish) + len(self._subscribe) + len(self._delivery)

    def publish(self, topic: str, qos: int = 0, retain: bool = False) -> d.Decision:
        if qos not in (0, 1, 2):
            return self.matcher.publish(topic, qos, retain)
        index = qos * 2 + (1 if retain else 0)
        slots = self._publish.get(topic)
        if slots is None:
            if len(self._publish) >= self.maxsize:
                self._publish.clear()
            slots = self._publish[topic] = [None] * 6
        else:
            decision = slots[index]
            if decision is not None:
                return decision
        decision = slots[index] = self.matcher.publish(topic, qos, retain)
        return decision

    def subscribe(self, topic_filter: str, qos: int = 0) -> d.Decision:
        if qos not in (0, 1, 2):
            return self.matcher.subscribe(topic_filter, qos)
        slots = self._subscribe.get(topic_filter)
        if slots is None:
            if len(self._subscribe) >= self.maxsize:
                self._subscribe.clear()
            slots = self._subscribe[topic_filter] = [None] * 3
        else:
            decision = slots[qos]
            if decision is not None:
                return decision
        decision = slots[qos] = self.matcher.subscribe(topic_filter, qos)
        return decision

    def deliverable(self, topic: str) -> bool:
        known = self._delivery.get(topic)
        if known is not None:
            return known
        if len(self._delivery) >= self.maxsize:
            self._delivery.clear()
        known = self._delivery[topic] = self.matcher.deliverable(topic)
        return known
