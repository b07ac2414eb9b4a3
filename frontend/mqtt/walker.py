"""Packet boundaries in a relayed MQTT byte stream, from fixed headers alone.

The relay forwards bytes without decoding them, yet it must know where packets start: to
count a browser's PUBLISH packets, to refuse a packet larger than the limit as soon as its
length prefix arrives (before its body is buffered anywhere), and to know whether a
DISCONNECT can be slipped in between two packets. A fixed header is one type byte and a
1-4 byte Variable Byte Integer (MQTT 5.0 section 2.1); everything after it is skipped.
"""

from __future__ import annotations

from broker.mqtt import PacketType, ProtocolError, ReasonCode
from broker.mqtt.wire import MAX_VARINT, malformed

PUBLISH = int(PacketType.PUBLISH)


class PacketWalker:
    """Follow packet boundaries across arbitrarily split chunks.

    `feed(data)` returns how many PUBLISH packets start in `data` and raises ProtocolError
    (PACKET_TOO_LARGE, or MALFORMED_PACKET for a length of more than four bytes). It keeps
    at most a partial fixed header (five bytes) between calls.
    """

    __slots__ = ("max_packet_size", "packets", "_remaining", "_head")

    def __init__(self, max_packet_size: int = MAX_VARINT + 5) -> None:
        self.max_packet_size = max_packet_size
        self.packets = 0  # fixed headers seen so far
        self._remaining = 0  # body bytes of the current packet still to come
        self._head = bytearray()  # a fixed header split across chunks

    @property
    def at_boundary(self) -> bool:
        """True when everything fed so far ends exactly at the end of a packet."""
        return not self._remaining and not self._head

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        publishes = 0
        pos = 0
        size = len(data)
        limit = self.max_packet_size
        head = self._head
        while pos < size:
            remaining = self._remaining
            if remaining:
                take = min(remaining, size - pos)
                self._remaining = remaining - take
                pos += take
                continue
            if not head and pos + 1 < size and data[pos + 1] < 0x80:
                # The common case: a whole two-byte fixed header (packets under 128 bytes).
                first = data[pos]
                length = data[pos + 1]
                pos += 2
            else:
                head.append(data[pos])
                pos += 1
                if len(head) == 1 or head[-1] & 0x80:
                    if len(head) == 5:
                        raise malformed("remaining length longer than four bytes")
                    continue
                first = head[0]
                length = 0
                for shift, byte in enumerate(head[1:]):
                    length |= (byte & 0x7F) << (7 * shift)
                total = len(head) + length
                head.clear()
                if total > limit:
                    raise ProtocolError(ReasonCode.PACKET_TOO_LARGE,
                                        f"packet of {total} bytes exceeds the maximum of {limit}")
                self._remaining = length
                self.packets += 1
                if first >> 4 == PUBLISH:
                    publishes += 1
                continue
            if length + 2 > limit:
                raise ProtocolError(ReasonCode.PACKET_TOO_LARGE,
                                    f"packet of {length + 2} bytes exceeds the maximum of {limit}")
            self._remaining = length
            self.packets += 1
            if first >> 4 == PUBLISH:
                publishes += 1
        return publishes


def first_packet_end(data: bytes | bytearray, max_packet_size: int) -> int | None:
    """Where the first packet of `data` ends, or None while it is incomplete.

    Raises ProtocolError when it cannot become a packet of at most `max_packet_size` bytes,
    so a client announcing a huge CONNECT is refused before its body is buffered.
    """
    size = len(data)
    length = 0
    for index in range(1, 5):
        if index >= size:
            return None
        byte = data[index]
        length |= (byte & 0x7F) << (7 * (index - 1))
        if not byte & 0x80:
            end = index + 1 + length
            if end > max_packet_size:
                raise ProtocolError(ReasonCode.PACKET_TOO_LARGE,
                                    f"first packet of {end} bytes exceeds the maximum of {max_packet_size}")
            return end if end <= size else None
    raise malformed("remaining length longer than four bytes")
