"""Roost's sans-I/O MQTT 3.1/3.1.1/5.0 codec: bytes in, packets out, packets in, bytes out.

Nothing here knows of sockets, asyncio or Django.
"""

from broker.mqtt.decoder import StreamDecoder, decode_publish
from broker.mqtt.encoder import encode, encode_publish, publish_packet_id_offset
from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from broker.mqtt.properties import (
    PROPERTY_IDS,
    DecoderLimits,
    Properties,
    allowed_properties,
    decode_properties,
    encode_properties,
)
from broker.mqtt.reason_codes import ConnackCode311, ReasonCode, connack_code_311
from broker.mqtt.topics import parse_shared, validate_topic_filter, validate_topic_name

__all__ = [
    "PROPERTY_IDS",
    "Auth",
    "Connack",
    "ConnackCode311",
    "Connect",
    "DecoderLimits",
    "Disconnect",
    "Packet",
    "PacketType",
    "Pingreq",
    "Pingresp",
    "Properties",
    "ProtocolError",
    "Puback",
    "Pubcomp",
    "Publish",
    "Pubrec",
    "Pubrel",
    "ReasonCode",
    "StreamDecoder",
    "Suback",
    "Subscribe",
    "Subscription",
    "Unsuback",
    "Unsubscribe",
    "Will",
    "allowed_properties",
    "connack_code_311",
    "decode_properties",
    "decode_publish",
    "encode",
    "encode_properties",
    "encode_publish",
    "parse_shared",
    "publish_packet_id_offset",
    "validate_topic_filter",
    "validate_topic_name",
]
