"""Topic names, topic filters and shared subscriptions (MQTT 5.0 sections 4.7 and 4.8.2)."""

from __future__ import annotations

import pytest

from broker.mqtt import (
    ProtocolError,
    ReasonCode,
    parse_shared,
    validate_topic_filter,
    validate_topic_name,
)


@pytest.mark.parametrize("topic", ["a", "a/b", "/", "a//b", "/a", "$SYS/uptime", "é/ü", " "])
def test_it_accepts_a_valid_topic_name(topic: str) -> None:
    validate_topic_name(topic)


@pytest.mark.parametrize("topic", ["", "+", "#", "a/+", "a/#", "a+", "a\x00b", "x" * 65_536])
def test_it_rejects_an_invalid_topic_name(topic: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        validate_topic_name(topic)
    assert caught.value.reason_code == ReasonCode.TOPIC_NAME_INVALID


@pytest.mark.parametrize(
    "topic_filter",
    ["#", "+", "a/+/b", "+/#", "a/#", "/", "+/+", "a//+", "$SYS/#", "$share/g/a/#",
     "$share/group/+", "$share/g/#"],
)
def test_it_accepts_a_valid_topic_filter(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    "topic_filter",
    ["", "a#", "a/#/b", "#/a", "a+/b", "a/b+", "a/+b", "##", "a\x00", "$share/g",
     "$share//a", "$share/g+/a", "$share/g#/a", "$share/g/", "$share/g/a#", "$share/g/a/#/b"],
)
def test_it_rejects_an_invalid_topic_filter(topic_filter: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        validate_topic_filter(topic_filter)
    assert caught.value.reason_code == ReasonCode.TOPIC_FILTER_INVALID  # [MQTT-4.7.1-1] [MQTT-4.7.1-2]


def test_it_splits_a_shared_subscription_into_group_and_filter() -> None:
    assert parse_shared("$share/workers/jobs/+") == ("workers", "jobs/+")
    assert parse_shared("$share/g/#") == ("g", "#")


def test_it_does_not_treat_an_ordinary_filter_as_shared() -> None:
    assert parse_shared("jobs/+") is None
    assert parse_shared("$sharex/g/a") is None
    assert parse_shared("$share") is None


def test_it_rejects_a_shared_subscription_without_a_filter() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_shared("$share/g")
    assert caught.value.reason_code == ReasonCode.TOPIC_FILTER_INVALID  # [MQTT-4.8.2-2]
