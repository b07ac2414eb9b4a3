"""Topic name and topic filter rules (section 4.7) and shared subscriptions (section 4.8.2)."""

from __future__ import annotations

from broker.mqtt.errors import ProtocolError
from broker.mqtt.reason_codes import ReasonCode

SHARE_PREFIX = "$share/"


def _name_error(message: str) -> ProtocolError:
    return ProtocolError(ReasonCode.TOPIC_NAME_INVALID, message)


def _filter_error(message: str) -> ProtocolError:
    return ProtocolError(ReasonCode.TOPIC_FILTER_INVALID, message)


def validate_topic_name(topic: str) -> None:
    """Raise ProtocolError(TOPIC_NAME_INVALID) unless `topic` may be published to."""
    if not topic:
        raise _name_error("topic name is empty")  # [MQTT-4.7.3-1]
    if "+" in topic or "#" in topic:
        raise _name_error("wildcard in a topic name")  # [MQTT-3.3.2-2] [MQTT-4.7.0-1]
    if "\x00" in topic:
        raise _name_error("U+0000 in a topic name")  # [MQTT-4.7.3-2]
    if len(topic) > 16_383 and len(topic.encode("utf-8")) > 0xFFFF:
        raise _name_error("topic name longer than 65535 bytes")  # [MQTT-4.7.3-3]


def _validate_levels(topic_filter: str) -> None:
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            # [MQTT-4.7.1-1]: '#' alone in its level, and the last level.
            raise _filter_error(f"misplaced '#' in {topic_filter!r}")
        if "+" in level and level != "+":
            raise _filter_error(f"'+' shares a level in {topic_filter!r}")  # [MQTT-4.7.1-2]


def validate_topic_filter(topic_filter: str) -> None:
    """Raise ProtocolError(TOPIC_FILTER_INVALID) unless `topic_filter` is a valid filter,
    shared (`$share/{group}/{filter}`) or not."""
    if not topic_filter:
        raise _filter_error("topic filter is empty")  # [MQTT-4.7.3-1]
    if "\x00" in topic_filter:
        raise _filter_error("U+0000 in a topic filter")  # [MQTT-4.7.3-2]
    if len(topic_filter) > 16_383 and len(topic_filter.encode("utf-8")) > 0xFFFF:
        raise _filter_error("topic filter longer than 65535 bytes")  # [MQTT-4.7.3-3]
    shared = parse_shared(topic_filter)
    _validate_levels(topic_filter if shared is None else shared[1])


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
    group, slash, inner = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not group:
        raise _filter_error("shared subscription without a share name")  # [MQTT-4.8.2-1]
    if "+" in group or "#" in group:
        # [MQTT-4.8.2-2]: the share name holds no '/', '+' or '#'.
        raise _filter_error("wildcard in a share name")
    if not slash or not inner:
        # [MQTT-4.8.2-2]: a '/' and a topic filter follow the share name.
        raise _filter_error("shared subscription without a topic filter")
    return group, inner
