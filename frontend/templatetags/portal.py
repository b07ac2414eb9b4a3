"""Template filters of the portal pages."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()

_MQTT_VERSIONS = {3: "MQTT 3.1", 4: "MQTT 3.1.1", 5: "MQTT 5.0"}


@register.filter
def mqtt_version(level: int | None) -> str:
    """The protocol level of CONNECT as people name it (4 → MQTT 3.1.1)."""
    if level is None:
        return ""
    return _MQTT_VERSIONS.get(level, f"level {level}")


@register.filter
def attribute_pairs(attributes: Any) -> list[tuple[str, str]]:
    """A device's attributes as (key, text) pairs, non-strings as JSON."""
    if not isinstance(attributes, dict):
        return []
    return [(str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
            for k, v in sorted(attributes.items())]
