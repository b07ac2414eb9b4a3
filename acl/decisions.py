"""Decision values: what was decided, by which rules, and why (no Django)."""

from __future__ import annotations

from dataclasses import dataclass

# Publish outcomes.
ALLOWED = "allowed"
DENIED = "denied"
# Subscribe outcomes.
GRANTED = "granted"
PARTIAL = "partial"
REFUSED = "refused"

# Reason codes, stable for programs; `reason` carries the sentence for people.
NO_ALLOW = "no_allow"
DENY_RULE = "deny_rule"
QOS_ABOVE_MAX = "qos_above_max"
RETAIN_NOT_ALLOWED = "retain_not_allowed"
INVALID = "invalid"
MATCHED = "matched"
OVERLAPS_DENY = "overlaps_deny"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str
    code: str
    reason: str
    rule_ids: tuple[int, ...] = ()
    qos: int | None = None  # for subscribe: the granted QoS

    @property
    def allowed(self) -> bool:
        """True when the action may proceed (a partial grant proceeds, with delivery checks)."""
        return self.outcome in (ALLOWED, GRANTED, PARTIAL)

    @property
    def partial(self) -> bool:
        return self.outcome == PARTIAL


def _ids(rule_ids: tuple[int, ...]) -> str:
    # A wide filter can overlap thousands of rules; the sentence names a few, rule_ids all.
    shown = ", ".join(str(rule_id) for rule_id in rule_ids[:5])
    return shown + (f" and {len(rule_ids) - 5} more" if len(rule_ids) > 5 else "")


def allowed(rule_ids: tuple[int, ...]) -> Decision:
    return Decision(ALLOWED, MATCHED, f"allowed by rule {_ids(rule_ids)}", rule_ids)


def no_allow(outcome: str) -> Decision:
    return Decision(outcome, NO_ALLOW, "no allow rule matches")


def deny_rule(outcome: str, rule_ids: tuple[int, ...]) -> Decision:
    return Decision(outcome, DENY_RULE, f"deny rule {_ids(rule_ids)} matches", rule_ids)


def qos_above_max(qos: int, maximum: int, rule_ids: tuple[int, ...]) -> Decision:
    return Decision(DENIED, QOS_ABOVE_MAX, f"QoS {qos} above maximum {maximum}", rule_ids)


def retain_not_allowed(rule_ids: tuple[int, ...]) -> Decision:
    return Decision(DENIED, RETAIN_NOT_ALLOWED,
                    f"retained publish not allowed by rule {_ids(rule_ids)}", rule_ids)


def invalid(outcome: str, why: str) -> Decision:
    return Decision(outcome, INVALID, why)


def granted(qos: int, rule_ids: tuple[int, ...], requested: int) -> Decision:
    reason = f"granted by rule {_ids(rule_ids)}"
    if qos < requested:
        reason += f" at QoS {qos} (requested {requested})"
    return Decision(GRANTED, MATCHED, reason, rule_ids, qos)


def partially(qos: int, allow_ids: tuple[int, ...], deny_ids: tuple[int, ...]) -> Decision:
    return Decision(PARTIAL, OVERLAPS_DENY,
                    f"granted partially: overlaps deny rule {_ids(deny_ids)}",
                    allow_ids + deny_ids, qos)


def not_contained(overlapping_allow: tuple[int, ...]) -> Decision:
    if overlapping_allow:
        return Decision(REFUSED, NO_ALLOW,
                        "no allow rule covers the whole filter (it only overlaps rule "
                        f"{_ids(overlapping_allow)})", overlapping_allow)
    return Decision(REFUSED, NO_ALLOW, "no allow rule matches")
