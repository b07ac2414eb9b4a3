"""MQTT topic names and filters: validation, matching, containment and overlap.

Pure Python, no Django: the broker imports this with rules it loaded itself.

Topics are compared level by level as exact strings. Python strings decoded from UTF-8
compare code point by code point, which is byte for byte on the wire: no case folding and
no Unicode normalisation happen anywhere here.

Matching, containment and overlap live in `broker.mqtt.filters`, shared with the broker.
"""

from __future__ import annotations

from broker.mqtt.filters import (
    canonical_levels,
    contains,
    levels_contain,
    levels_match,
    levels_overlap,
    matches,
    overlaps,
)

__all__ = [
    "MAX_TOPIC_BYTES", "SHARE_PREFIX", "TopicError", "canonical_levels", "contains", "is_valid_filter",
    "is_valid_topic", "levels_contain", "levels_match", "levels_overlap", "matches", "overlaps",
    "split_shared", "validate_filter", "validate_topic",
]

MAX_TOPIC_BYTES = 65535
SHARE_PREFIX = "$share/"


class TopicError(ValueError):
    """A topic name or filter that MQTT does not allow."""


def _check_common(value: str, what: str) -> None:
    if not isinstance(value, str):
        raise TopicError(f"The {what} must be a string.")
    if value == "":
        raise TopicError(f"The {what} is empty.")
    if "\x00" in value:
        raise TopicError(f"The {what} contains a NUL character.")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise TopicError(f"The {what} is longer than {MAX_TOPIC_BYTES} bytes.")


def validate_topic(topic: str) -> None:
    """Raise TopicError unless `topic` is a valid topic name (no wildcards)."""
    _check_common(topic, "topic")
    if "+" in topic or "#" in topic:
        raise TopicError("A topic name cannot contain the wildcards + or #.")


def validate_filter(topic_filter: str) -> None:
    """Raise TopicError unless `topic_filter` is a valid MQTT topic filter."""
    _check_common(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            raise TopicError("# must be a whole level and the last level of a filter.")
        if "+" in level and level != "+":
            raise TopicError("+ must be a whole level of a filter.")


def is_valid_topic(topic: str) -> bool:
    try:
        validate_topic(topic)
    except TopicError:
        return False
    return True


def is_valid_filter(topic_filter: str) -> bool:
    try:
        validate_filter(topic_filter)
    except TopicError:
        return False
    return True


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """Split `$share/NAME/FILTER` into (NAME, FILTER); (None, filter) for a plain filter.

    Raises TopicError for a malformed shared subscription [MQTT-4.8.2-1, 4.8.2-2].
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    rest = topic_filter[len(SHARE_PREFIX):]
    name, slash, inner = rest.partition("/")
    if not slash or not name or "+" in name or "#" in name:
        raise TopicError("A shared subscription is $share/NAME/FILTER with a NAME free of + and #.")
    if inner == "":
        raise TopicError("A shared subscription needs a filter after $share/NAME/.")
    return name, inner
