"""Connection messages in the log, as Mosquitto writes them by default (`connection_messages`)."""

from __future__ import annotations

import logging

from broker.engine.interfaces import ClientInfo, EventHooks, format_address, format_client_text
from broker.mqtt.reason_codes import reason_name

logger = logging.getLogger("broker")

PROTOCOLS = {3: "3.1", 4: "3.1.1", 5: "5.0"}


def connected(info: ClientInfo) -> None:
    user = info.principal.attributes.get("username")
    logger.info("client %s connected from %s on %s (MQTT %s, clean %s, keep alive %d%s)",
                format_client_text(info.client_id), format_address(info.remote_address), info.listener, PROTOCOLS.get(info.protocol_level, "?"),
                "yes" if info.clean_start else "no", info.keep_alive,
                f", user {format_client_text(user)}" if user is not None else "")


def disconnected(info: ClientInfo, reason: int) -> None:
    logger.info("client %s from %s disconnected: %s", format_client_text(info.client_id), format_address(info.remote_address), reason_name(reason))


def install(hooks: EventHooks) -> None:
    hooks.connected.append(connected)
    hooks.disconnected.append(disconnected)
