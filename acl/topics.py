"""MQTT topic names and filters for the platform's ACLs: the broker's rules, in our words.

Pure Python, no Django: the broker imports this with rules it loaded itself.

The rules themselves are written once, in `broker.mqtt.topics` (validity, `$share/`) and
`broker.mqtt.filters` (matching, containment, overlap); this module only turns their
problem codes into the sentences that forms and the API show, as `TopicError`.

Topics are compared level by level as exact strings. Python strings decoded from UTF-8
compare code point by code point, which is byte for byte on the wire: no case folding and
no Unicode normalisation happen anywhere here.
"""

from __future__ import annotations

from broker.mqtt import topics as mqtt_topics
from broker.mqtt.filters import (
    canonical_levels,
    contains,
    levels_contain,
    levels_match,
    levels_overlap,
    matches,
    overlaps,
)
from broker.mqtt.topics import MAX_TOPIC_BYTES, SHARE_PREFIX

__all__ = [
    "MAX_TOPIC_BYTES", "SHARE_PREFIX", "TopicError", "canonical_levels", "contains", "is_valid_filter",
    "is_valid_topic", "levels_contain", "levels_match", "levels_overlap", "matches", "overlaps",
    "split_shared", "validate_filter", "validate_topic",
]

_SHARE_FORM = "A shared subscription is $share/NAME/FILTER with a NAME free of + and #."
_MESSAGES = {
    mqtt_topics.WILDCARD_IN_NAME: "A topic name cannot contain the wildcards + or #.",
    mqtt_topics.MISPLACED_HASH: "# must be a whole level and the last level of a filter.",
    mqtt_topics.PLUS_NOT_ALONE: "+ must be a whole level of a filter.",
    mqtt_topics.SHARE_NO_NAME: _SHARE_FORM,
    mqtt_topics.SHARE_NAME_WILDCARD: _SHARE_FORM,
    mqtt_topics.SHARE_NO_SLASH: _SHARE_FORM,
    mqtt_topics.SHARE_NO_FILTER: "A shared subscription needs a filter after $share/NAME/.",
}


class TopicError(ValueError):
    """A topic name or filter that MQTT does not allow."""


def _error(problem: str, what: str) -> TopicError:
    if problem == mqtt_topics.EMPTY:
        return TopicError(f"The {what} is empty.")
    if problem == mqtt_topics.NUL:
        return TopicError(f"The {what} contains a NUL character.")
    if problem == mqtt_topics.TOO_LONG:
        return TopicError(f"The {what} is longer than {MAX_TOPIC_BYTES} bytes.")
    return TopicError(_MESSAGES[problem])


def _check_string(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise TopicError(f"The {what} must be a string.")


def validate_topic(topic: str) -> None:
    """Raise TopicError unless `topic` is a valid topic name (no wildcards)."""
    _check_string(topic, "topic")
    # The empty, NUL and length problems first, as for a filter.
    problem = mqtt_topics.string_problem(topic) or mqtt_topics.topic_name_problem(topic)
    if problem is not None:
        raise _error(problem, "topic")


def validate_filter(topic_filter: str) -> None:
    """Raise TopicError unless `topic_filter` is a valid MQTT topic filter.

    `$share/` is not special here (see `split_shared`): rule filters are plain filters."""
    _check_string(topic_filter, "topic filter")
    problem = mqtt_topics.filter_problem(topic_filter)
    if problem is not None:
        raise _error(problem, "topic filter")


def is_valid_topic(topic: str) -> bool:
    return isinstance(topic, str) and mqtt_topics.topic_name_problem(topic) is None


def is_valid_filter(topic_filter: str) -> bool:
    return isinstance(topic_filter, str) and mqtt_topics.filter_problem(topic_filter) is None


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """Split `$share/NAME/FILTER` into (NAME, FILTER); (None, filter) for a plain filter.

    Raises TopicError for a malformed shared subscription [MQTT-4.8.2-1, 4.8.2-2].
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    problem = mqtt_topics.share_problem(topic_filter)
    if problem is not None:
        raise _error(problem, "topic filter")
    name, _, inner = topic_filter[len(SHARE_PREFIX):].partition("/")
    return name, inner
