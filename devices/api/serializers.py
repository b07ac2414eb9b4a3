"""Serializers of the registry API: the shape of what is shown, and the shape of what is accepted.

Business rules (uniqueness, cycles, who may grant which role) stay in devices/services.py;
these only check types and sizes and name the field at fault.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from broker.integration.models import ConnectionEvent, RetainedMessage

from ..models import AuditEvent, Device, DeviceGroup, Membership, Role, Tenant
from ..validators import DEVICE_NAME_RULE, validate_device_name

MAX_TAGS = 64
MAX_ATTRIBUTES_JSON = 64 * 1024


_DATETIME = serializers.DateTimeField()
_ZERO = timedelta(0)


def _iso(value: datetime | None) -> str | None:
    """What DRF's DateTimeField gives with the project's TIME_ZONE (UTC): ISO 8601 with `Z`,
    without its per-call timezone lookups; a page of devices formats three per row."""
    if value is None:
        return None
    if value.utcoffset() == _ZERO:
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    formatted: str = _DATETIME.to_representation(value)
    return formatted


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 128,
                      "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"})
class NameField(serializers.CharField):
    """A device or group name: what ends up in topics and client ids (devices/validators.py)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=128, validators=[validate_device_name], **kwargs)


# Tenants -------------------------------------------------------------------------------------


class TenantSerializer(serializers.ModelSerializer[Tenant]):
    role = serializers.SerializerMethodField(help_text="The caller's role in this tenant (null for platform "
                                                       "staff who are not members).")

    class Meta:
        model = Tenant
        fields = ["slug", "name", "enabled", "role", "created", "updated"]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "enum": Role.values, "nullable": True})
    def get_role(self, obj: Tenant) -> str | None:
        return getattr(obj, "caller_role", None)


class TenantCreateSerializer(serializers.Serializer[Any]):
    slug = serializers.SlugField(max_length=63, help_text="The tenant's id in URLs, topics and the CLI.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                 help_text="A display name; the slug when empty.")


class TenantUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False)
    enabled = serializers.BooleanField(required=False, help_text="A disabled tenant's devices are "
                                                                 "disconnected and refused; its API keys stop working.")


# Devices -------------------------------------------------------------------------------------


class PresenceSerializer(serializers.Serializer[Any]):
    online = serializers.BooleanField(help_text="Connected now, as the broker last wrote (written behind, "
                                                "within about a second).")
    last_seen = serializers.DateTimeField(allow_null=True, help_text="When it last connected or disconnected.")
    address = serializers.IPAddressField(allow_null=True, help_text="The address it last connected from.")
    protocol_version = serializers.IntegerField(allow_null=True, help_text="MQTT protocol level of the last "
                                                "connection: 3 (3.1), 4 (3.1.1) or 5 (5.0).")
    certificate_serial = serializers.CharField(allow_null=True, help_text="Serial of the certificate of the "
                                               "live connection (hex); null when offline.")


class DeviceSerializer(serializers.Serializer[Device]):
    """How a device is shown. Built by hand in to_representation: a page of 1,000 devices is
    the hot path of fleet dashboards, and per-field serializer calls cost more than the query."""

    name = serializers.CharField(help_text="The MQTT client id and certificate CN.")
    display_name = serializers.CharField()
    group = serializers.CharField(allow_null=True, help_text="The device's group (one per device), by name.")
    tags = serializers.ListField(child=serializers.CharField())
    attributes = serializers.DictField(child=serializers.JSONField())
    enabled = serializers.BooleanField()
    presence = PresenceSerializer()
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()

    def to_representation(self, device: Device | dict[str, Any]) -> dict[str, Any]:
        """A device, or a row of DEVICE_ROW_FIELDS (what the list reads: no model instances)."""
        row = device if isinstance(device, dict) else device_row(device)
        online = row["online"]
        return {
            "name": row["name"],
            "display_name": row["display_name"],
            "group": row["group_name"],
            "tags": row["tags"],
            "attributes": row["attributes"],
            "enabled": row["enabled"],
            "presence": {
                "online": online,
                "last_seen": _iso(row["last_seen"]),
                "address": row["last_ip"],
                "protocol_version": row["protocol_version"],
                "certificate_serial": (row["live_serial"] or None) if online else None,
            },
            "created": _iso(row["created"]),
            "updated": _iso(row["updated"]),
        }


# The columns a device is shown from; `group_name` and `live_serial` are annotations.
DEVICE_ROW_FIELDS = ("pk", "name", "display_name", "tags", "attributes", "enabled", "online", "last_seen", "last_ip",
                     "protocol_version", "created", "updated")


def device_row(device: Device) -> dict[str, Any]:
    row = {name: getattr(device, name) for name in DEVICE_ROW_FIELDS}
    row["group_name"] = device.group.name if device.group is not None else None
    row["live_serial"] = getattr(device, "live_serial", None)
    return row


def _check_tags(value: list[str]) -> None:
    if len(value) > MAX_TAGS:
        raise serializers.ValidationError(f"At most {MAX_TAGS} tags.")


def _check_attributes(value: dict[str, Any]) -> None:
    if len(json.dumps(value)) > MAX_ATTRIBUTES_JSON:
        raise serializers.ValidationError(f"Attributes take at most {MAX_ATTRIBUTES_JSON} bytes as JSON.")


class DeviceWriteSerializer(serializers.Serializer[Any]):
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    group = serializers.CharField(max_length=128, required=False, allow_null=True,
                                  help_text="A group of this tenant by name; null for none.")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                 validators=[_check_tags])
    attributes = serializers.DictField(child=serializers.JSONField(), required=False,
                                       validators=[_check_attributes],
                                       help_text="Free-form JSON; topic filters may use `{attr:KEY}`.")
    enabled = serializers.BooleanField(required=False, help_text="A disabled device is disconnected and "
                                                                 "refused until enabled again.")


class DeviceCreateSerializer(DeviceWriteSerializer):
    name = NameField(help_text=f"The MQTT client id: {DEVICE_NAME_RULE}.")

    class Meta:
        fields = ["name", "display_name", "group", "tags", "attributes", "enabled"]


class DeviceUpdateSerializer(DeviceWriteSerializer):
    name = serializers.CharField(required=False, help_text="Cannot change (it is the MQTT client id and the "
                                                           "certificate's CN); accepted only when unchanged.")


class KickSerializer(serializers.Serializer[Any]):
    kicked = serializers.BooleanField(help_text="Always true: the disconnect was handed to the broker, which "
                                                "ends a live session within about a second (MQTT 5: "
                                                "DISCONNECT 0x98).")
    online = serializers.BooleanField(help_text="Whether the device was online by the last presence the broker "
                                                "wrote; false means there was probably no session to end.")


class ConnectionEventSerializer(serializers.ModelSerializer[ConnectionEvent]):
    class Meta:
        model = ConnectionEvent
        fields = ["event", "at", "client_id", "remote_address", "protocol_version", "certificate_serial",
                  "reason", "reason_code"]
        read_only_fields = fields


class RetainedSerializer(serializers.Serializer[RetainedMessage]):
    topic = serializers.CharField()
    payload = serializers.CharField(help_text="The payload: text when it is UTF-8, else base64.")
    encoding = serializers.ChoiceField(choices=["utf-8", "base64"], help_text="How `payload` is written.")
    qos = serializers.IntegerField()
    size = serializers.IntegerField(help_text="Payload size in bytes.")
    updated = serializers.DateTimeField()

    def to_representation(self, row: RetainedMessage) -> dict[str, Any]:
        data = bytes(row.payload)
        try:
            payload, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(data).decode("ascii"), "base64"
        return {"topic": row.topic, "payload": payload, "encoding": encoding, "qos": row.qos,
                "size": len(data), "updated": _iso(row.updated)}


# Groups --------------------------------------------------------------------------------------


class GroupSerializer(serializers.ModelSerializer[DeviceGroup]):
    # Declared fields are taken out of the class by the serializer's metaclass: `parent` does
    # not replace Field.parent as the stubs believe (here and below).
    parent = serializers.SerializerMethodField(  # type: ignore[assignment]
        help_text="The parent group's name, or null at the top.")
    device_count = serializers.IntegerField(read_only=True, help_text="Devices directly in this group "
                                            "(not counting nested groups).")

    class Meta:
        model = DeviceGroup
        fields = ["name", "parent", "description", "device_count", "created"]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "nullable": True})
    def get_parent(self, group: DeviceGroup) -> str | None:
        return group.parent.name if group.parent is not None else None


class GroupWriteSerializer(serializers.Serializer[Any]):
    name = NameField(help_text=f"The group's name: {DEVICE_NAME_RULE}.")
    parent = serializers.CharField(max_length=128, required=False, allow_null=True,  # type: ignore[assignment]
                                   help_text="The parent group by name; null or absent for a top-level group.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


# Members -------------------------------------------------------------------------------------


class MemberSerializer(serializers.ModelSerializer[Membership]):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True, allow_blank=True)

    class Meta:
        model = Membership
        fields = ["username", "email", "role", "created"]
        read_only_fields = fields


class MemberInviteSerializer(serializers.Serializer[Any]):
    user = serializers.CharField(max_length=254, help_text="An existing user's username or email address. "
                                                           "Users are never created here.")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class MemberUpdateSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=Role.choices)


# Audit ---------------------------------------------------------------------------------------


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    at = serializers.DateTimeField(source="created", read_only=True)
    actor = serializers.CharField(source="actor_label", read_only=True,
                                  help_text="A user name, `api-key:NAME`, or `system`.")
    target = serializers.CharField(source="target_repr", read_only=True)
    before = serializers.JSONField(read_only=True, allow_null=True)
    after = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor", "actor_kind", "action", "target_type", "target_id", "target", "before",
                  "after"]
        read_only_fields = fields


__all__ = [
    "AuditEventSerializer", "ConnectionEventSerializer", "DeviceCreateSerializer", "DeviceSerializer",
    "DeviceUpdateSerializer", "GroupSerializer", "GroupWriteSerializer", "KickSerializer",
    "MemberInviteSerializer", "MemberSerializer", "MemberUpdateSerializer",
    "RetainedSerializer", "TenantCreateSerializer", "TenantSerializer", "TenantUpdateSerializer",
]
