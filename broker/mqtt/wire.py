"""Wire primitives shared by the decoder and the encoder: integers, varints, strings.

Readers take `(data, pos, end)` and return `(value, new_pos)`; they never read at or past
`end`, so a length that overruns its enclosing section is a malformed packet.
"""

from __future__ import annotations

import struct

from broker.mqtt.errors import ProtocolError
from broker.mqtt.reason_codes import ReasonCode

MALFORMED = ReasonCode.MALFORMED_PACKET
PROTOCOL = ReasonCode.PROTOCOL_ERROR

U16 = struct.Struct("!H")
U32 = struct.Struct("!I")
pack_u16 = U16.pack
pack_u32 = U32.pack
unpack_u16 = U16.unpack_from
unpack_u32 = U32.unpack_from

MAX_VARINT = 268_435_455
_ONE_BYTE_VARINTS = tuple(bytes((n,)) for n in range(128))


def malformed(message: str) -> ProtocolError:
    return ProtocolError(MALFORMED, message)


def protocol_error(message: str) -> ProtocolError:
    return ProtocolError(PROTOCOL, message)


def encode_varint(value: int) -> bytes:
    """Variable Byte Integer (section 1.5.5)."""
    if value < 128:
        if value < 0:
            raise ValueError(f"negative variable byte integer: {value}")
        return _ONE_BYTE_VARINTS[value]
    if value > MAX_VARINT:
        raise ValueError(f"variable byte integer too large: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    shift = 0
    for _ in range(4):
        if pos >= end:
            raise malformed("variable byte integer runs past its section")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and shift:
                raise malformed("variable byte integer not minimally encoded")  # [MQTT-1.5.5-1]
            return value, pos
        shift += 7
    # Section 1.5.5: four bytes at most.
    raise malformed("variable byte integer longer than four bytes")


def read_u16(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 2 > end:
        raise malformed("two-byte integer runs past its section")
    return unpack_u16(data, pos)[0], pos + 2


def read_u32(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 4 > end:
        raise malformed("four-byte integer runs past its section")
    return unpack_u32(data, pos)[0], pos + 4


def read_binary(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise malformed("binary data length runs past its section")
    stop = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if stop > end:
        raise malformed("binary data runs past its section")
    return data[pos + 2 : stop], stop


def decode_utf8(raw: bytes) -> str:
    """Strict MQTT UTF-8: well-formed, no surrogates, no U+0000."""
    try:
        # Python's strict codec refuses encoded surrogates and overlong forms. [MQTT-1.5.4-1]
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed("string is not well-formed UTF-8") from None
    if "\x00" in text:
        raise malformed("string contains U+0000")  # [MQTT-1.5.4-2]
    return text


def read_utf8(data: bytes, pos: int, end: int) -> tuple[str, int]:
    if pos + 2 > end:
        raise malformed("string length runs past its section")
    stop = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if stop > end:
        raise malformed("string runs past its section")
    raw = data[pos + 2 : stop]
    if raw.isascii():
        # Pure ASCII is valid UTF-8 and needs only the NUL check; most topics take this path.
        if 0 in raw:
            raise malformed("string contains U+0000")  # [MQTT-1.5.4-2]
        return raw.decode("ascii"), stop
    return decode_utf8(raw), stop


def encode_utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return pack_u16(len(raw)) + raw


def encode_binary(raw: bytes) -> bytes:
    if len(raw) > 0xFFFF:
        raise ValueError("binary data longer than 65535 bytes")
    return pack_u16(len(raw)) + raw
