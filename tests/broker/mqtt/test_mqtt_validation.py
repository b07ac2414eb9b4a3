"""Strict validation beyond the corpus: the positive case next to each refusal, the
decoder's state rules, the limits a hostile client meets, and the error's contract."""

from __future__ import annotations

import pytest

from broker.mqtt import (
    ConnackCode311,
    Connect,
    DecoderLimits,
    Properties,
    ProtocolError,
    Publish,
    ReasonCode,
    StreamDecoder,
    Subscribe,
    Subscription,
    Unsubscribe,
    connack_code_311,
    encode,
)
from tests.broker.mqtt.mqtt_helpers import connected_decoder


def refusal(decoder: StreamDecoder, wire: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(wire)
    return caught.value


def test_it_rejects_a_wildcard_in_a_publish_topic_name() -> None:
    for topic in ("a/+", "#", "a/#", "sport+", "+"):
        error = refusal(connected_decoder(5), encode(Publish(topic, b"", 0), 5))
        assert error.reason_code == ReasonCode.TOPIC_NAME_INVALID  # [MQTT-3.3.2-2]


def test_it_accepts_a_topic_name_with_every_kind_of_level() -> None:
    for topic in ("a/b", "/", "a//b", "$SYS/broker", "données/température", "🐓"):
        publish = Publish(topic, b"x", 0)
        assert connected_decoder(5).feed(encode(publish, 5)) == [publish]


def test_it_accepts_a_zero_length_topic_with_a_topic_alias_in_mqtt_5() -> None:
    publish = Publish("", b"x", 1, packet_id=1, properties=Properties(topic_alias=3))
    assert connected_decoder(5).feed(encode(publish, 5)) == [publish]


def test_it_rejects_a_zero_length_topic_without_a_topic_alias_in_mqtt_5() -> None:
    error = refusal(connected_decoder(5), encode(Publish("", b"x", 0), 5))
    assert error.reason_code == ReasonCode.PROTOCOL_ERROR  # [MQTT-3.3.2-1]


def test_it_rejects_a_zero_length_topic_in_3_1_1() -> None:
    error = refusal(connected_decoder(4), encode(Publish("", b"x", 0), 4))
    assert error.reason_code == ReasonCode.TOPIC_NAME_INVALID


def test_it_rejects_qos_0_with_dup_in_mqtt_5_but_tolerates_it_from_3_1_1_clients() -> None:
    wire = bytes.fromhex("3804000161") + b"x"
    assert refusal(connected_decoder(5), bytes.fromhex("380400016100")).reason_code == (
        ReasonCode.MALFORMED_PACKET
    )
    assert connected_decoder(4).feed(wire) == [Publish("a", b"x", 0, dup=True)]


def test_it_accepts_subscription_identifiers_in_a_publish_sent_to_a_client() -> None:
    publish = Publish("a", b"", 0, properties=Properties(subscription_identifiers=[4, 9]))
    decoder = connected_decoder(5, server_side=False)
    assert decoder.feed(encode(publish, 5)) == [publish]


def test_it_rejects_subscription_identifiers_in_a_publish_sent_to_the_server() -> None:
    publish = Publish("a", b"", 0, properties=Properties(subscription_identifiers=[4]))
    assert refusal(connected_decoder(5), encode(publish, 5)).reason_code == (
        ReasonCode.PROTOCOL_ERROR  # [MQTT-3.3.4-6]
    )


def test_it_accepts_a_password_without_a_user_name_in_mqtt_5() -> None:
    connect = Connect(5, True, 30, "dev", None, b"token")
    assert StreamDecoder().feed(encode(connect, 5)) == [connect]


def test_it_accepts_an_empty_client_id_with_a_clean_session_in_3_1_1() -> None:
    connect = Connect(4, True, 30, "")
    assert StreamDecoder().feed(encode(connect, 4)) == [connect]


def test_it_rejects_an_empty_client_id_without_a_clean_session_in_3_1_1() -> None:
    error = refusal(StreamDecoder(), encode(Connect(4, False, 30, ""), 4))
    assert error.reason_code == ReasonCode.CLIENT_IDENTIFIER_NOT_VALID  # [MQTT-3.1.3-8]


def test_it_sets_the_protocol_level_before_refusing_the_rest_of_a_connect() -> None:
    decoder = StreamDecoder()
    bad_will = bytes.fromhex("101000044d5154540502003c021702000163")
    assert refusal(decoder, bad_will).reason_code == ReasonCode.PROTOCOL_ERROR
    assert decoder.protocol_level == 5
    assert not decoder.connected


def test_it_leaves_the_protocol_level_unset_for_an_unsupported_version() -> None:
    decoder = StreamDecoder()
    error = refusal(decoder, bytes.fromhex("100d00044d5154540602003c000163"))
    assert error.reason_code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION
    assert decoder.protocol_level is None
    assert connack_code_311(error.reason_code) == ConnackCode311.UNACCEPTABLE_PROTOCOL_VERSION


def test_it_decodes_an_mqtt_3_1_connect() -> None:
    decoder = StreamDecoder()
    connect = Connect(3, True, 60, "legacy", "u", b"p")
    assert decoder.feed(encode(connect, 3)) == [connect]
    assert decoder.protocol_level == 3


def test_it_leaves_wildcard_placement_in_subscribe_to_validate_topic_filter() -> None:
    # The engine judges filters: Mosquitto-like, it closes the connection; the platform answers 0x8F.
    subscribe = Subscribe(1, [Subscription("a/#/b", 0), Subscription("ok/+", 1)])
    assert connected_decoder(5).feed(encode(subscribe, 5)) == [subscribe]


def test_it_refuses_more_subscriptions_than_its_limit() -> None:
    limits = DecoderLimits(max_subscriptions=3)
    at_limit = Subscribe(1, [Subscription(f"t/{i}") for i in range(3)])
    over = Subscribe(2, [Subscription(f"t/{i}") for i in range(4)])
    decoder = connected_decoder(4, limits=limits)
    assert decoder.feed(encode(at_limit, 4)) == [at_limit]
    assert refusal(decoder, encode(over, 4)).reason_code == ReasonCode.QUOTA_EXCEEDED


def test_it_refuses_more_unsubscriptions_than_its_limit() -> None:
    decoder = connected_decoder(4, limits=DecoderLimits(max_subscriptions=2))
    error = refusal(decoder, encode(Unsubscribe(1, ["a", "b", "c"]), 4))
    assert error.reason_code == ReasonCode.QUOTA_EXCEEDED


def test_it_refuses_more_user_properties_than_its_limit() -> None:
    limits = DecoderLimits(max_user_properties=2)

    def publish(count: int) -> Publish:
        return Publish("a", b"", 0, properties=Properties(user_properties=[("k", "v")] * count))

    assert connected_decoder(5, limits=limits).feed(encode(publish(2), 5)) == [publish(2)]
    error = refusal(connected_decoder(5, limits=limits), encode(publish(3), 5))
    assert error.reason_code == ReasonCode.QUOTA_EXCEEDED


def test_it_refuses_user_properties_larger_than_its_limit() -> None:
    decoder = connected_decoder(5, limits=DecoderLimits(max_user_property_bytes=100))
    publish = Publish("a", b"", 0, properties=Properties(user_properties=[("k" * 60, "v" * 60)]))
    assert refusal(decoder, encode(publish, 5)).reason_code == ReasonCode.QUOTA_EXCEEDED


def test_it_refuses_more_properties_than_its_limit() -> None:
    decoder = connected_decoder(5, server_side=False, limits=DecoderLimits(max_properties=4))
    publish = Publish("a", b"", 0, properties=Properties(subscription_identifiers=[1, 2, 3, 4, 5]))
    assert refusal(decoder, encode(publish, 5)).reason_code == ReasonCode.QUOTA_EXCEEDED


def test_it_rejects_a_property_length_that_is_not_minimally_encoded() -> None:
    error = refusal(connected_decoder(5), bytes.fromhex("30050001618000"))
    assert error.reason_code == ReasonCode.MALFORMED_PACKET  # [MQTT-1.5.5-1]


def test_a_protocol_error_carries_its_reason_code_and_a_message() -> None:
    error = refusal(connected_decoder(4), bytes.fromhex("30020000"))
    assert error.reason_code == ReasonCode.TOPIC_NAME_INVALID
    assert error.message == "empty topic name"
    assert "0x90" in str(error)


def test_reason_codes_keep_every_name_the_specification_gives_0x00() -> None:
    zero = [ReasonCode[name] for name in ("SUCCESS", "NORMAL_DISCONNECTION", "GRANTED_QOS_0")]
    assert [int(code) for code in zero] == [0, 0, 0]
    assert int(ReasonCode["GRANTED_QOS_2"]) == 2
    assert int(ReasonCode["WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED"]) == 0xA2


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (ReasonCode.SUCCESS, ConnackCode311.ACCEPTED),
        (ReasonCode.UNSUPPORTED_PROTOCOL_VERSION, ConnackCode311.UNACCEPTABLE_PROTOCOL_VERSION),
        (ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, ConnackCode311.IDENTIFIER_REJECTED),
        (ReasonCode.SERVER_UNAVAILABLE, ConnackCode311.SERVER_UNAVAILABLE),
        (ReasonCode.SERVER_BUSY, ConnackCode311.SERVER_UNAVAILABLE),
        (ReasonCode.BAD_USER_NAME_OR_PASSWORD, ConnackCode311.BAD_USERNAME_OR_PASSWORD),
        (ReasonCode.NOT_AUTHORIZED, ConnackCode311.NOT_AUTHORIZED),
        (ReasonCode.BAD_AUTHENTICATION_METHOD, ConnackCode311.NOT_AUTHORIZED),
        (ReasonCode.BANNED, ConnackCode311.NOT_AUTHORIZED),
        (ReasonCode.QUOTA_EXCEEDED, ConnackCode311.NOT_AUTHORIZED),
    ],
)
def test_it_maps_each_connack_reason_to_its_3_1_1_return_code(reason: int, code: int) -> None:
    assert connack_code_311(reason) == code


def test_properties_compare_by_value_and_show_only_what_is_set() -> None:
    assert Properties(topic_alias=3) == Properties(topic_alias=3)
    assert Properties(topic_alias=3) != Properties(topic_alias=4)
    assert repr(Properties(topic_alias=3)) == "Properties(topic_alias=3)"


def test_it_keeps_a_byte_order_mark_inside_a_string() -> None:
    # [MQTT-1.5.4-3]: U+FEFF is a character like any other, never stripped.
    publish = Publish("\ufeffa", b"", 0, properties=Properties(content_type="\ufefftext"))
    assert connected_decoder(5).feed(encode(publish, 5)) == [publish]


def test_it_rejects_u_0000_inside_a_non_ascii_string() -> None:
    raw = "é\x00".encode()
    wire = bytes((0x30, 2 + len(raw))) + len(raw).to_bytes(2, "big") + raw
    error = refusal(connected_decoder(4), wire)
    assert error.reason_code == ReasonCode.MALFORMED_PACKET  # [MQTT-1.5.4-2]


def test_it_rejects_u_0000_in_a_user_property() -> None:
    publish = Publish("a", b"", 0, properties=Properties(user_properties=[("k", "v\x00")]))
    error = refusal(connected_decoder(5), encode(publish, 5))
    assert error.reason_code == ReasonCode.MALFORMED_PACKET  # [MQTT-1.5.4-2]


def test_user_properties_keep_their_order_around_other_properties() -> None:
    pairs = [("k", "v"), ("ключ", "значение"), ("", ""), ("k", "v2")]
    publish = Publish("a", b"", 0, properties=Properties(content_type="t", user_properties=pairs))
    wire = encode(publish, 5)
    assert connected_decoder(5).feed(wire) == [publish]


@pytest.mark.parametrize("bad_pair", [("k\x00", "v"), ("k", "v\x00"), ("é\x00", "v"), ("k", "\udc80")],
                         ids=["nul-key", "nul-value", "nul-non-ascii", "lone-surrogate"])
def test_a_bad_string_anywhere_in_a_run_of_user_properties_is_malformed(bad_pair) -> None:
    good = [("k", "v")] * 3
    props = Properties(user_properties=[*good, ("k", "v")])
    wire = bytearray(encode(Publish("a", b"", 0, properties=props), 5))
    key, value = bad_pair
    raw_key, raw_value = key.encode("utf-8", "surrogatepass"), value.encode("utf-8", "surrogatepass")
    # Same length as the last pair ("k", "v") when padded; rebuild the packet around the bad one.
    last = b"\x26" + len(raw_key).to_bytes(2, "big") + raw_key + len(raw_value).to_bytes(2, "big") + raw_value
    body = bytes(wire[2:])  # remaining length fits one byte here
    ok_last = b"\x26\x00\x01k\x00\x01v"
    assert body.endswith(ok_last)
    props_len = body[3] + len(last) - len(ok_last)
    body = body[:3] + bytes((props_len,)) + body[4:-len(ok_last)] + last
    error = refusal(connected_decoder(5), bytes((0x30, len(body))) + body)
    assert error.reason_code == ReasonCode.MALFORMED_PACKET


def test_a_user_property_cut_short_by_the_property_length_is_malformed() -> None:
    props = Properties(user_properties=[("k", "v"), ("key", "value")])
    wire = bytearray(encode(Publish("a", b"", 0, properties=props), 5))
    wire[5] -= 3  # the property length now ends inside the last value
    error = refusal(connected_decoder(5), bytes(wire))
    assert error.reason_code == ReasonCode.MALFORMED_PACKET


def test_user_properties_count_towards_the_property_limits() -> None:
    props = Properties(content_type="t", user_properties=[("k", "v")] * 3)
    wire = encode(Publish("a", b"", 0, properties=props), 5)
    assert connected_decoder(5, limits=DecoderLimits(max_properties=4)).feed(wire)
    error = refusal(connected_decoder(5, limits=DecoderLimits(max_properties=3)), wire)
    assert error.reason_code == ReasonCode.QUOTA_EXCEEDED
    error = refusal(connected_decoder(5, limits=DecoderLimits(max_user_properties=2)), wire)
    assert error.reason_code == ReasonCode.QUOTA_EXCEEDED


def test_a_client_takes_mosquittos_packet_too_large_in_a_puback_and_a_server_does_not() -> None:
    # Mosquitto answers a payload over message_size_limit with PUBACK/PUBREC 0x95; a bridge to
    # it must read that as the refusal it is, not as a malformed packet.
    for first in (0x40, 0x50):
        [ack] = connected_decoder(5, server_side=False).feed(bytes((first, 3, 0, 7, 0x95)))
        assert (ack.packet_id, ack.reason_code) == (7, 0x95)
        with pytest.raises(ProtocolError):
            connected_decoder(5).feed(bytes((first, 3, 0, 7, 0x95)))
