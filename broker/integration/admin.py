from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from devices.audit import Actor

from .models import ConnectionEvent, RetainedMessage
from .services import clear_retained


@admin.register(RetainedMessage)
class RetainedMessageAdmin(admin.ModelAdmin[RetainedMessage]):
    list_display = ["topic", "tenant", "publisher_name", "payload_size", "qos", "updated"]
    list_filter = ["tenant", "qos"]
    search_fields = ["topic", "publisher_name"]
    readonly_fields = ["tenant", "topic", "publisher", "publisher_name", "qos", "properties",
                       "expires_at", "updated", "payload_size", "payload_view"]
    exclude = ["payload"]
    actions = ["clear_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="size (bytes)")
    def payload_size(self, obj: RetainedMessage) -> int:
        return obj.size

    @admin.display(description="payload")
    def payload_view(self, obj: RetainedMessage) -> Any:
        kind, text = obj.rendered_payload()
        return format_html("<div><em>{}</em></div><pre style='white-space:pre-wrap'>{}</pre>", kind, text)

    @admin.action(description="Clear the selected retained topics (through the broker)")
    def clear_selected(self, request: HttpRequest, queryset: QuerySet[RetainedMessage]) -> None:
        actor = Actor.for_user(request.user)
        count = 0
        for row in queryset.select_related("tenant"):
            clear_retained(row.tenant, row.topic, actor=actor)
            count += 1
        self.message_user(request, f"Asked the broker to clear {count} retained topic(s).", messages.SUCCESS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting the row alone would leave the broker's copy; clearing goes through the broker.
        return False


@admin.register(ConnectionEvent)
class ConnectionEventAdmin(admin.ModelAdmin[ConnectionEvent]):
    list_display = ["at", "client_id", "tenant", "event", "reason", "remote_address", "protocol_version",
                    "certificate_serial"]
    list_filter = ["event", "tenant", "protocol_version"]
    search_fields = ["client_id", "remote_address", "certificate_serial", "reason"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
