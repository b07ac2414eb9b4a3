from __future__ import annotations

from typing import Any, TypeVar

from django.contrib import admin
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from .audit import Actor, record_audit
from .changes import record_change
from .models import AuditEvent, ChangeEvent, Device, DeviceGroup, Membership, Tenant
from .services import delete_device, delete_tenant

_M = TypeVar("_M", bound=Model)


class RegistryAdmin(admin.ModelAdmin[_M]):
    """Admin edits go through the same audit trail and outbox as every other change."""

    change_kind = ""

    def save_model(self, request: HttpRequest, obj: _M, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        tenant = obj if isinstance(obj, Tenant) else getattr(obj, "tenant", None)
        op = "updated" if change else "created"
        record_audit(Actor.for_user(request.user), f"{self.change_kind}.{op}", obj, tenant=tenant,
                     after={k: str(v) for k, v in form.cleaned_data.items()})
        record_change(self.change_kind, op, obj.pk, tenant=tenant)

    def delete_model(self, request: HttpRequest, obj: _M) -> None:
        tenant = obj if isinstance(obj, Tenant) else getattr(obj, "tenant", None)
        pk = obj.pk
        record_audit(Actor.for_user(request.user), f"{self.change_kind}.delete", obj,
                     tenant=None if isinstance(obj, Tenant) else tenant)
        super().delete_model(request, obj)
        record_change(self.change_kind, "deleted", pk, tenant=None if isinstance(obj, Tenant) else tenant)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[_M]) -> None:
        # "Delete selected" goes object by object, so every deletion is audited and
        # announced to the broker like a single one (a bulk delete would be silent).
        with transaction.atomic():
            for obj in queryset.order_by("pk"):
                self.delete_model(request, obj)


class MembershipInline(admin.TabularInline[Membership, Tenant]):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(RegistryAdmin[Tenant]):
    change_kind = "tenant"
    list_display = ["slug", "name", "enabled", "created"]
    list_filter = ["enabled"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]

    def delete_model(self, request: HttpRequest, obj: Tenant) -> None:
        delete_tenant(obj, actor=Actor.for_user(request.user))


@admin.register(Membership)
class MembershipAdmin(RegistryAdmin[Membership]):
    change_kind = "membership"
    list_display = ["user", "tenant", "role", "created"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "tenant__slug"]
    autocomplete_fields = ["user"]


@admin.register(DeviceGroup)
class DeviceGroupAdmin(RegistryAdmin[DeviceGroup]):
    change_kind = "group"
    list_display = ["name", "tenant", "parent", "created"]
    list_filter = ["tenant"]
    search_fields = ["name", "description"]


@admin.register(Device)
class DeviceAdmin(RegistryAdmin[Device]):
    change_kind = "device"
    list_display = ["name", "tenant", "group", "enabled", "online", "last_seen", "last_ip", "protocol_version"]
    list_filter = ["tenant", "enabled", "online", "group", "protocol_version"]
    search_fields = ["name", "display_name", "last_ip"]
    readonly_fields = ["online", "last_seen", "last_ip", "protocol_version", "created", "updated"]

    def delete_model(self, request: HttpRequest, obj: Device) -> None:
        # The service also deletes the device's own ACL rules with their change events, which
        # a database cascade would drop silently.
        delete_device(obj, actor=Actor.for_user(request.user))


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = ["created", "tenant", "actor_label", "action", "target_type", "target_repr"]
    list_filter = ["tenant", "actor_kind", "action", "target_type"]
    search_fields = ["actor_label", "action", "target_repr", "target_id"]
    date_hierarchy = "created"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ChangeEvent)
class ChangeEventAdmin(admin.ModelAdmin[ChangeEvent]):
    list_display = ["id", "created", "tenant", "kind", "op", "object_id"]
    list_filter = ["kind", "op", "tenant"]
    search_fields = ["object_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
