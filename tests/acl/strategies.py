"""Hypothesis strategies over a small alphabet, so that filters and topics collide often."""

from __future__ import annotations

from hypothesis import strategies as st

from acl.rules import RuleSpec

from .reference import LITERALS

literal_levels = st.sampled_from(LITERALS)


@st.composite
def topics(draw: st.DrawFn) -> str:
    levels = draw(st.lists(literal_levels, min_size=1, max_size=4))
    topic = "/".join(levels)
    return topic if topic else "a"


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(literal_levels, st.just("+")), min_size=0, max_size=3))
    if not levels or (len(levels) < 3 and draw(st.booleans())):
        levels.append("#")
    text = "/".join(levels)
    return text if text else "#"


@st.composite
def rule_sets(draw: st.DrawFn, tenant: str = "acme") -> list[RuleSpec]:
    count = draw(st.integers(min_value=0, max_value=6))
    rules = []
    for index in range(count):
        rules.append(RuleSpec(
            id=index + 1, tenant=tenant, subject_kind="all_devices", subject_value="",
            action=draw(st.sampled_from(["publish", "subscribe", "both"])),
            topic_filter=draw(filters()),
            effect=draw(st.sampled_from(["allow", "allow", "deny"])),
            max_qos=draw(st.sampled_from([None, 0, 1, 2])),
            allow_retain=draw(st.booleans()),
        ))
    return rules
