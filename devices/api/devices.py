"""`devices/`: the tenant's devices with their presence; kick; the connection log and what a
device last published (retained). Viewer reads, operator writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.models import (
    Case,
    CharField,
    DateTimeField,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.functional import cached_property
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from broker.integration.models import ConnectionEvent, RetainedMessage
from roost.api.errors import ERROR_SCHEMA, bad_request, not_found
from roost.api.views import TenantScopedMixin

from ..models import Device, DeviceGroup, Role
from ..services import create_device, delete_device, kick_device, update_device
from .filters import ConnectionEventFilter, DeviceFilter
from .serializers import (
    DEVICE_ROW_FIELDS,
    ConnectionEventSerializer,
    DeviceCreateSerializer,
    DeviceSerializer,
    DeviceUpdateSerializer,
    KickSerializer,
    RetainedSerializer,
)

# Devices never seen sort as seen at the epoch, so `ordering=last_seen` has no nulls to page over.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
NAME_PARAMETER = OpenApiParameter("name", str, OpenApiParameter.PATH, description="The device's name.")
DEVICE_PARAMETER = OpenApiParameter("device", str, OpenApiParameter.PATH, description="The device's name.")

_EXAMPLE = {
    "name": "sensor-042.line-3", "display_name": "Line 3 / sensor 42", "group": "line-3", "tags": ["pilot"],
    "attributes": {"floor": 3, "model": "th-2"}, "enabled": True,
    "presence": {"online": True, "last_seen": "2025-05-01T09:30:12.123456Z", "address": "203.0.113.7",
                 "protocol_version": 5, "certificate_serial": "5c1f3a9e0d7b42c8a1e6f0b3d2c4e5f6a7b8c9d0"},
    "created": "2025-04-02T08:00:00Z", "updated": "2025-04-30T17:12:45Z",
}


def live_serial() -> Subquery:
    """The certificate serial of the device's latest connect: one correlated subquery in the
    list query itself, evaluated for online rows only (CASE), never one query per row.

    Latest by id, not by `at`: the broker appends a device's events in the order they happen,
    and the id order walks the device_id index backwards to the first connect instead of
    sorting the device's whole history for every row."""
    latest = (ConnectionEvent.objects.filter(device_id=OuterRef("pk"), event=ConnectionEvent.CONNECTED)
              .order_by("-id").values("certificate_serial")[:1])
    return Subquery(latest, output_field=CharField())


def group_named(tenant: Any, name: str | None, field: str = "group") -> DeviceGroup | None:
    if name is None:
        return None
    group = DeviceGroup.objects.filter(tenant=tenant, name=name).first()
    if group is None:
        raise bad_request(f"No group {name!r} in tenant {tenant.slug}.", code="unknown_group", field=field)
    return group


@extend_schema_view(
    list=extend_schema(
        summary="List devices",
        description="Devices with their presence, by name (default), `last_seen` (never-seen devices count as "
                    "oldest) or `created`. `group` includes nested groups. The issue's \"groups\" is `group`: a "
                    "device belongs to at most one group, which may itself be nested.",
        parameters=[OpenApiParameter("attr", str, many=True, explode=True,
                                     description="`key:value`, repeatable (all must match). The value matches "
                                                 "the attribute as a string and, when it reads as a JSON number, "
                                                 "true or false, also as that value (`floor:3` finds 3 and \"3\").",
                                     examples=[OpenApiExample("Floor 3", value=["floor:3"])])],
        responses={200: DeviceSerializer(many=True)},
    ),
    retrieve=extend_schema(summary="Show a device", parameters=[NAME_PARAMETER],
                           responses={200: DeviceSerializer},
                           examples=[OpenApiExample("Online", value=_EXAMPLE, response_only=True)]),
    destroy=extend_schema(summary="Delete a device", parameters=[NAME_PARAMETER],
                          description="Its certificates stop working and a live session is ended at once.",
                          responses={204: None}),
)
class DeviceViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    viewsets.GenericViewSet[Device]):
    serializer_class = DeviceSerializer
    queryset = Device.objects.none()  # the model, for the schema; requests use get_queryset
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    filterset_class = DeviceFilter
    ordering = ("name",)
    ordering_fields = ("name", "last_seen", "created")
    keyset_unique = "name"
    keyset_aliases = {"last_seen": "last_seen_key"}
    read_role = Role.VIEWER
    write_role = Role.OPERATOR
    action_roles = {"kick": Role.OPERATOR}

    def get_queryset(self) -> QuerySet[Device, Any]:
        devices = (Device.objects.filter(tenant=self.tenant).select_related("group")
                   .annotate(live_serial=Case(When(online=True, then=live_serial()), default=Value(None),
                                              output_field=CharField()),
                             last_seen_key=Coalesce("last_seen", Value(NEVER), output_field=DateTimeField())))
        if getattr(self, "action", None) == "list":
            # Plain rows for pages of up to 1,000 devices: building model instances (and the
            # group's) would cost more than the query.
            extra = ("last_seen_key",) if "last_seen" in self.request.query_params.get("ordering", "") else ()
            rows: QuerySet[Device, dict[str, Any]] = devices.values(*DEVICE_ROW_FIELDS, "live_serial", *extra,
                                                                    group_name=F("group__name"))
            return rows
        return devices

    def get_object(self) -> Device:
        device: Device | None = self.get_queryset().filter(name=self.kwargs["name"]).first()
        if device is None:
            raise not_found(f"No device {self.kwargs['name']!r} in tenant {self.tenant.slug}.",
                            code="device_not_found")
        return device

    def _shown(self, device: Device, code: int = 200, **headers: str) -> Response:
        fresh = self.get_queryset().get(pk=device.pk)
        return Response(DeviceSerializer(fresh).data, status=code, headers=headers or None)

    @extend_schema(
        summary="Create a device", request=DeviceCreateSerializer,
        description="Register a device; issue its certificate with `POST devices/{name}/certificates`.",
        responses={201: DeviceSerializer, 400: OpenApiResponse(ERROR_SCHEMA, description="A field is invalid "
                   "(`field` names it), the name is taken, or the group does not exist.")},
        examples=[OpenApiExample("A sensor", request_only=True, value={
            "name": "sensor-042.line-3", "display_name": "Line 3 / sensor 42", "group": "line-3",
            "tags": ["pilot"], "attributes": {"floor": 3}})],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = DeviceCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = dict(form.validated_data)
        if "group" in values:
            values["group"] = group_named(self.tenant, values["group"])
        device = create_device(self.tenant, actor=self.actor, **values)
        location = reverse("v1:device-detail", kwargs={"tenant": self.tenant.slug, "name": device.name},
                           request=request)
        return self._shown(device, status.HTTP_201_CREATED, Location=location)

    @extend_schema(
        summary="Change a device", parameters=[NAME_PARAMETER], request=DeviceUpdateSerializer,
        description="Only the fields sent change. `enabled: false` disconnects the device at once and refuses "
                    "it until enabled again. The name cannot change.",
        responses={200: DeviceSerializer},
        examples=[OpenApiExample("Disable", value={"enabled": False}, request_only=True),
                  OpenApiExample("Move to a group", value={"group": "line-4"}, request_only=True)],
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        device = self.get_object()
        form = DeviceUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = dict(form.validated_data)
        name = values.pop("name", None)
        if name is not None and name != device.name:
            raise bad_request("A device's name is its MQTT client id and certificate subject and cannot change; "
                              "create a new device instead.", code="immutable", field="name")
        if "group" in values:
            values["group"] = group_named(self.tenant, values["group"])
        if values:
            device = update_device(device, actor=self.actor, **values)
        return self._shown(device)

    def perform_destroy(self, instance: Device) -> None:
        delete_device(instance, actor=self.actor)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.perform_destroy(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Disconnect a device now", parameters=[NAME_PARAMETER], request=None,
        description="The broker ends the device's live session within about a second (MQTT 5: DISCONNECT "
                    "with reason 0x98, administrative action). The device may reconnect at once; disable it "
                    "(`PATCH {\"enabled\": false}`) to keep it out.",
        responses={202: KickSerializer},
        examples=[OpenApiExample("Kicked", value={"kicked": True, "online": True}, response_only=True)],
    )
    @action(detail=True, methods=["post"])
    def kick(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        device = self.get_object()
        kick_device(device, actor=self.actor)
        return Response({"kicked": True, "online": device.online}, status=status.HTTP_202_ACCEPTED)


class _DeviceChildMixin(TenantScopedMixin):
    """Lists below one device: `devices/{device}/…`."""

    kwargs: dict[str, Any]

    @cached_property
    def device(self) -> Device:
        device = Device.objects.filter(tenant=self.tenant, name=self.kwargs["device"]).first()
        if device is None:
            raise not_found(f"No device {self.kwargs['device']!r} in tenant {self.tenant.slug}.",
                            code="device_not_found")
        return device


@extend_schema_view(list=extend_schema(
    summary="Show a device's connection log",
    description="Connects and disconnects (with the reason), newest first. The broker writes them behind, "
                "within about a second.",
    parameters=[DEVICE_PARAMETER], responses={200: ConnectionEventSerializer(many=True)}))
class DeviceConnectionViewSet(_DeviceChildMixin, mixins.ListModelMixin,
                              viewsets.GenericViewSet[ConnectionEvent]):
    serializer_class = ConnectionEventSerializer
    queryset = ConnectionEvent.objects.none()
    filter_backends = [DjangoFilterBackend]
    filterset_class = ConnectionEventFilter
    ordering = ("-at", "-id")

    def get_queryset(self) -> QuerySet[ConnectionEvent]:
        return ConnectionEvent.objects.filter(device=self.device)


@extend_schema_view(list=extend_schema(
    summary="Show what a device last published (retained)",
    description="The retained messages this device published, by topic, as the broker stored them "
                "(written behind, within about a second). `payload` is text when it is UTF-8, else base64 "
                "(see `encoding`). Clear them with `DELETE retained/?filter=…`.",
    parameters=[DEVICE_PARAMETER], responses={200: RetainedSerializer(many=True)}))
class DeviceRetainedViewSet(_DeviceChildMixin, mixins.ListModelMixin,
                            viewsets.GenericViewSet[RetainedMessage]):
    serializer_class = RetainedSerializer
    queryset = RetainedMessage.objects.none()
    filter_backends: list[Any] = []
    ordering = ("topic",)

    def get_queryset(self) -> QuerySet[RetainedMessage]:
        now = timezone.now()
        return (RetainedMessage.objects.filter(tenant=self.tenant, publisher=self.device)
                .exclude(expires_at__lte=now))
