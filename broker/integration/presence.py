"""Presence and retained state: the broker's hooks that feed the registry and the database.

Every hook only records into the write-behind buffers and publishes small JSON messages
inside the tenant's namespace; nothing here waits for the database.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from broker.engine.broker import Broker
from broker.engine.interfaces import ClientInfo, Principal, format_address
from broker.engine.message import Message, message_from_properties
from broker.mqtt.reason_codes import reason_name

from .identities import IdentityIndex
from .models import ConnectionEvent
from .writebehind import PresenceRow, RetainedRow, WriteBehind

PROTOCOL_NAMES = {3: "3.1", 4: "3.1.1", 5: "5.0"}


class PresenceHooks:
    def __init__(self, broker: Broker, identities: IdentityIndex, writer: WriteBehind) -> None:
        self.broker = broker
        self.identities = identities
        self.writer = writer
        self._since: dict[int, str] = {}

    def install(self) -> None:
        hooks = self.broker.hooks
        hooks.connected.append(self.connected)
        hooks.disconnected.append(self.disconnected)
        hooks.published.append(self.published)

    # Hooks -----------------------------------------------------------------------------------

    def connected(self, info: ClientInfo) -> None:
        attrs = info.principal.attributes
        device_id = attrs.get("device_id")
        if device_id is None:
            return
        now = datetime.now(UTC)
        address = info.remote_address[0] if info.remote_address else None
        self._since[device_id] = now.isoformat()
        self.writer.presence(device_id, PresenceRow(True, now, address, info.protocol_level))
        self.writer.connection_event(ConnectionEvent(
            tenant_id=attrs.get("tenant_id"), device_id=device_id, client_id=info.client_id,
            event=ConnectionEvent.CONNECTED, remote_address=format_address(info.remote_address, ""),
            protocol_version=info.protocol_level, certificate_serial=attrs.get("serial", ""), at=now,
        ))
        state = {"online": True, "since": now.isoformat(), "protocol": PROTOCOL_NAMES.get(info.protocol_level),
                 "address": format_address(info.remote_address, "")}
        self._announce(info.principal, state, "connected", {"at": now.isoformat(), "address": format_address(info.remote_address, ""),
                                                            "protocol": state["protocol"]})

    def disconnected(self, info: ClientInfo, reason: int) -> None:
        attrs = info.principal.attributes
        device_id = attrs.get("device_id")
        if device_id is None:
            return
        now = datetime.now(UTC)
        address = info.remote_address[0] if info.remote_address else None
        why = reason_name(reason)
        self._since.pop(device_id, None)
        self.writer.presence(device_id, PresenceRow(False, now, address, info.protocol_level))
        self.writer.connection_event(ConnectionEvent(
            tenant_id=attrs.get("tenant_id"), device_id=device_id, client_id=info.client_id,
            event=ConnectionEvent.DISCONNECTED, reason=why, reason_code=reason,
            remote_address=format_address(info.remote_address, ""), protocol_version=info.protocol_level,
            certificate_serial=attrs.get("serial", ""), at=now,
        ))
        state = {"online": False, "since": now.isoformat(), "protocol": PROTOCOL_NAMES.get(info.protocol_level),
                 "address": format_address(info.remote_address, ""), "reason": why}
        self._announce(info.principal, state, "disconnected", {"at": now.isoformat(), "reason": why,
                                                               "reason_code": reason})

    def announce_offline(self, device_id: int, reason: str) -> None:
        """Announce a device offline whose disconnect no connection will report (the previous
        broker process died with it connected), so its retained presence stops saying online."""
        device = self.identities.devices.get(device_id)
        tenant = self.identities.tenants.get(device.tenant_id) if device is not None else None
        if device is None or tenant is None:
            return
        now = datetime.now(UTC).isoformat()
        principal = Principal(name=device.name, mountpoint=tenant.mountpoint)
        self._announce(principal, {"online": False, "since": now, "reason": reason}, "disconnected",
                       {"at": now, "reason": reason})

    def published(self, principal: Principal | None, message: Message) -> None:
        if not message.retain:
            return
        mountpoint, _, topic = message.topic.partition("/")
        tenant = self.identities.tenant_by_mountpoint.get(mountpoint + "/")
        if tenant is None:
            return
        if not message.payload:
            self.writer.retained_clear(tenant.id, topic)
            return
        device_id = None
        publisher = ""
        if principal is not None:
            device_id = principal.attributes.get("device_id")
            publisher = principal.name
        self.writer.retained_set(tenant.id, topic, RetainedRow(
            payload=message.payload, qos=message.qos, properties=_properties(message),
            publisher_id=device_id, publisher_name=publisher or "roost", expires_at=_expiry(self.broker, message),
            updated=datetime.now(UTC),
        ))

    # Helpers -----------------------------------------------------------------------------------

    def _announce(self, principal: Principal, state: dict[str, Any], event: str, details: dict[str, Any]) -> None:
        mountpoint, device = principal.mountpoint, principal.name
        now = self.broker.now()
        presence = json.dumps(state, separators=(",", ":")).encode()
        self.broker.publish(message_from_properties(
            f"{mountpoint}$roost/presence/{device}", presence, 1, True, None, now, None))
        body = json.dumps({"device": device, **details}, separators=(",", ":")).encode()
        self.broker.publish(message_from_properties(
            f"{mountpoint}$roost/events/{event}/{device}", body, 1, False, None, now, None))


def _properties(message: Message) -> dict[str, Any]:
    props = message.properties
    if props is None:
        return {}
    out: dict[str, Any] = {}
    if props.content_type is not None:
        out["content_type"] = props.content_type
    if props.payload_format_indicator is not None:
        out["payload_format_indicator"] = props.payload_format_indicator
    if props.response_topic is not None:
        out["response_topic"] = props.response_topic
    if props.user_properties:
        out["user_properties"] = [list(pair) for pair in props.user_properties]
    return out


def _expiry(broker: Broker, message: Message) -> datetime | None:
    if message.expiry_at is None:
        return None
    left = message.expiry_at - broker.now()
    return datetime.fromtimestamp(datetime.now(UTC).timestamp() + left, UTC)
