"""What the broker keeps in the database: retained state, presence history, sessions."""

from __future__ import annotations

import json

from django.db import models

from devices.models import Device, Tenant


class RetainedMessage(models.Model):
    """The retained message of one topic of a tenant, written behind and coalesced per topic."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="retained_messages")
    topic = models.TextField()
    payload = models.BinaryField()
    qos = models.PositiveSmallIntegerField(default=0)
    properties = models.JSONField(default=dict, blank=True)
    publisher = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="retained_messages")
    publisher_name = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField()

    class Meta:
        ordering = ["tenant", "topic"]
        constraints = [models.UniqueConstraint(fields=["tenant", "topic"], name="retained_unique_tenant_topic")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}:{self.topic}"

    @property
    def size(self) -> int:
        return len(self.payload)

    def rendered_payload(self) -> tuple[str, str]:
        """(kind, text): pretty JSON, plain text, or a hex dump, whichever the bytes are."""
        data = bytes(self.payload)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return "hex", _hexdump(data)
        try:
            return "json", json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
        except ValueError:
            pass
        if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
            return "hex", _hexdump(data)
        return "text", text


def _hexdump(data: bytes, width: int = 16) -> str:
    lines = []
    for offset in range(0, min(len(data), 4096), width):
        chunk = data[offset:offset + width]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexpart:<{width * 3}} {text}")
    if len(data) > 4096:
        lines.append(f"… {len(data) - 4096} more bytes")
    return "\n".join(lines)


class ConnectionEvent(models.Model):
    """One connect or disconnect of a device, for the connection log."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    REFUSED = "refused"

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="connection_events")
    client_id = models.CharField(max_length=256)
    event = models.CharField(max_length=16, choices=[(CONNECTED, "connected"), (DISCONNECTED, "disconnected"),
                                                     (REFUSED, "refused")])
    reason = models.CharField(max_length=200, blank=True)
    reason_code = models.PositiveSmallIntegerField(null=True, blank=True)
    remote_address = models.CharField(max_length=100, blank=True)
    protocol_version = models.PositiveSmallIntegerField(null=True, blank=True)
    certificate_serial = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.client_id} {self.event} {self.at:%Y-%m-%d %H:%M:%S}"


class BrokerState(models.Model):
    """Singleton rows of broker bookkeeping (change-feed cursor, saved sessions)."""

    key = models.CharField(max_length=64, primary_key=True)
    value = models.JSONField(default=dict)
    blob = models.BinaryField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key
