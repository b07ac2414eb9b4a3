"""The one exception the codec raises for bad input."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.mqtt.packets import Packet


class ProtocolError(Exception):
    """The peer broke the MQTT protocol; close its connection, using `reason_code` where the
    version allows (a CONNACK before the session exists, a DISCONNECT after, in MQTT 5).

    `packets` holds the valid packets that came before the bad one in the same
    `StreamDecoder.feed` call, so the caller may still act on them before closing.
    """

    def __init__(self, reason_code: int, message: str) -> None:
        super().__init__(f"{message} (reason code 0x{reason_code:02X})")
        self.reason_code = reason_code
        self.message = message
        self.packets: list[Packet] = []
