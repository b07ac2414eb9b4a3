"""Small builders for pure-core tests."""

from __future__ import annotations

import itertools
from typing import Any

from acl.rules import RuleSpec

_ids = itertools.count(1)


def rule(topic_filter: str, effect: str = "allow", action: str = "both", *, tenant: str = "acme",
         subject_kind: str = "all_devices", subject_value: str = "", **extra: Any) -> RuleSpec:
    return RuleSpec(id=extra.pop("id", next(_ids)), tenant=tenant, subject_kind=subject_kind,
                    subject_value=subject_value, action=action, topic_filter=topic_filter,
                    effect=effect, **extra)
