"""Shared helpers for the MQTT codec tests: decoders already past the handshake."""

from __future__ import annotations

from broker.mqtt import Connack, Connect, Packet, StreamDecoder, encode


def connected_decoder(level: int, server_side: bool = True, **kwargs: object) -> StreamDecoder:
    """A decoder that has seen its peer's CONNECT (server side) or CONNACK (client side)."""
    if server_side:
        decoder = StreamDecoder(**kwargs)  # type: ignore[arg-type]
        decoder.feed(encode(Connect(protocol_level=level, client_id="tester"), level))
    else:
        decoder = StreamDecoder(server_side=False, protocol_level=level, **kwargs)  # type: ignore[arg-type]
        decoder.feed(encode(Connack(), level))
    assert decoder.connected
    assert decoder.protocol_level == level
    return decoder


def fresh_decoder(level: int, server_side: bool) -> StreamDecoder:
    """A decoder at the start of a connection."""
    if server_side:
        return StreamDecoder()
    return StreamDecoder(server_side=False, protocol_level=level)


def decoder_for(packet: Packet | type[Packet], level: int, server_side: bool) -> StreamDecoder:
    """The decoder state in which `packet` may legally arrive."""
    kind = packet if isinstance(packet, type) else type(packet)
    if kind in (Connect, Connack):
        return fresh_decoder(level, server_side)
    return connected_decoder(level, server_side)


def decode_one(data: bytes, packet_type: type[Packet], level: int, server_side: bool) -> Packet:
    packets = decoder_for(packet_type, level, server_side).feed(data)
    assert len(packets) == 1, packets
    return packets[0]
