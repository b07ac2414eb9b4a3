"""Topic name and topic filter rules (section 4.7) and shared subscriptions (section 4.8.2).

The one place these rules are written. Each check answers with a problem code (or None),
so that every caller words it in its own way: the broker as a ProtocolError with a reason
code, the platform's ACLs (`acl.topics`) as a sentence for a form, the dynamic security
plugin as Mosquitto's refusal. Matching, containment and overlap are in `filters`.
"""

from __future__ import annotations

from typing import TypeGuard

from broker.mqtt.errors import ProtocolError
from broker.mqtt.reason_codes import ReasonCode

SHARE_PREFIX = "$share/"
MAX_TOPIC_BYTES = 65535

# Why a topic name or filter is not valid.
EMPTY = "empty"  # [MQTT-4.7.3-1]
NUL = "nul"  # [MQTT-4.7.3-2]
TOO_LONG = "too long"  # [MQTT-4.7.3-3]
WILDCARD_IN_NAME = "wildcard in a name"  # [MQTT-3.3.2-2] [MQTT-4.7.0-1]
MISPLACED_HASH = "misplaced #"  # [MQTT-4.7.1-1]: alone in its level, and the last level
PLUS_NOT_ALONE = "+ not alone"  # [MQTT-4.7.1-2]: alone in its level
# $share/{name}/{filter} [MQTT-4.8.2-1] [MQTT-4.8.2-2]
SHARE_NO_NAME = "no share name"
SHARE_NAME_WILDCARD = "wildcard in the share name"
SHARE_NO_SLASH = "no / after the share name"
SHARE_NO_FILTER = "no filter after the share name"


def string_problem(value: str) -> str | None:
    """Why `value` can be neither a topic name nor a filter, whatever its wildcards."""
    if not value:
        return EMPTY
    if "\x00" in value:
        return NUL
    # Fewer than 16,384 characters are at most 65,532 bytes: only long strings are encoded.
    if len(value) > 16_383 and len(value.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        return TOO_LONG
    return None


# What a value put into one level (a client id for `%c`, a device name for `{device}`)
# must not hold: it would add a level or a wildcard, or a NUL no MQTT string may carry.
NOT_IN_A_LEVEL = ("/", "+", "#", "\x00")


def is_literal_level(value: str | None) -> TypeGuard[str]:
    """Whether `value` can stand as exactly one literal level of a filter."""
    return value is not None and value != "" and not any(char in value for char in NOT_IN_A_LEVEL)


def has_wildcard(topic: str) -> bool:
    """Whether `topic` holds `+` or `#` (a filter, never a topic name)."""
    return "+" in topic or "#" in topic


def topic_name_problem(topic: str) -> str | None:
    """Why `topic` may not be published to, or None."""
    if not topic:
        return EMPTY
    if "+" in topic or "#" in topic:
        return WILDCARD_IN_NAME
    return string_problem(topic)


def levels_problem(topic_filter: str) -> str | None:
    """Why the wildcards of a (non-shared) filter are misplaced, or None."""
    if "+" not in topic_filter and "#" not in topic_filter:
        return None
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            return MISPLACED_HASH
        if "+" in level and level != "+":
            return PLUS_NOT_ALONE
    return None


def filter_problem(topic_filter: str) -> str | None:
    """Why `topic_filter`, read as a plain filter (`$share/` is a level like any other),
    is not valid, or None."""
    return string_problem(topic_filter) or levels_problem(topic_filter)


def share_problem(topic_filter: str) -> str | None:
    """Why a filter starting with `$share/` is not a shared subscription, or None."""
    group, slash, inner = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not group:
        return SHARE_NO_NAME
    if "+" in group or "#" in group:
        return SHARE_NAME_WILDCARD  # the share name holds no '/', '+' or '#'
    if not slash:
        return SHARE_NO_SLASH
    if not inner:
        return SHARE_NO_FILTER
    return None


_NAME_ERRORS = {
    EMPTY: "topic name is empty",
    WILDCARD_IN_NAME: "wildcard in a topic name",
    NUL: "U+0000 in a topic name",
    TOO_LONG: "topic name longer than 65535 bytes",
}
_FILTER_ERRORS = {
    EMPTY: "topic filter is empty",
    NUL: "U+0000 in a topic filter",
    TOO_LONG: "topic filter longer than 65535 bytes",
    MISPLACED_HASH: "misplaced '#' in {!r}",
    PLUS_NOT_ALONE: "'+' shares a level in {!r}",
    SHARE_NO_NAME: "shared subscription without a share name",
    SHARE_NAME_WILDCARD: "wildcard in a share name",
    SHARE_NO_SLASH: "shared subscription without a topic filter",
    SHARE_NO_FILTER: "shared subscription without a topic filter",
}


def _filter_error(problem: str, topic_filter: str) -> ProtocolError:
    return ProtocolError(
        ReasonCode.TOPIC_FILTER_INVALID, _FILTER_ERRORS[problem].format(topic_filter)
    )


def validate_topic_name(topic: str) -> None:
    """Raise ProtocolError(TOPIC_NAME_INVALID) unless `topic` may be published to."""
    problem = topic_name_problem(topic)
    if problem is not None:
        raise ProtocolError(ReasonCode.TOPIC_NAME_INVALID, _NAME_ERRORS[problem])


def validate_topic_filter(topic_filter: str) -> None:
    """Raise ProtocolError(TOPIC_FILTER_INVALID) unless `topic_filter` is a valid filter,
    shared (`$share/{group}/{filter}`) or not."""
    problem = string_problem(topic_filter)
    if problem is not None:
        raise _filter_error(problem, topic_filter)
    shared = parse_shared(topic_filter)
    inner = topic_filter if shared is None else shared[1]
    problem = levels_problem(inner)
    if problem is not None:
        raise _filter_error(problem, inner)


def is_share_name(topic: str) -> bool:
    """Whether a topic NAME would read as a shared subscription (`$share/…`).

    Such a name could never reach a subscriber (every filter starting `$share/` is a
    shared subscription), and "$" topics are the server's (section 4.7.2): clients may
    not publish to it, as with Mosquitto (PUBACK/PUBREC 0x87, the connection stays)."""
    return topic.startswith(SHARE_PREFIX)


def parse_shared(topic_filter: str) -> tuple[str, str] | None:
    """Split `$share/{group}/{filter}` into (group, filter); None for a non-shared filter.

    Raises ProtocolError(TOPIC_FILTER_INVALID) when the filter starts with `$share/` but
    the group or inner filter is missing or the group holds a wildcard.
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    problem = share_problem(topic_filter)
    if problem is not None:
        raise _filter_error(problem, topic_filter)
    group, _, inner = topic_filter[len(SHARE_PREFIX) :].partition("/")
    return group, inner
