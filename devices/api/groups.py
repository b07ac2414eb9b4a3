"""`groups/`: the tenant's device groups (nested by `parent`). Viewer reads, operator writes."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from roost.api.errors import ERROR_SCHEMA, bad_request, not_found
from roost.api.views import TenantScopedMixin

from ..models import DeviceGroup, Role
from ..services import create_group, delete_group, update_group
from .devices import group_named
from .serializers import GroupSerializer, GroupWriteSerializer

NAME_PARAMETER = OpenApiParameter("name", str, OpenApiParameter.PATH, description="The group's name.")


@extend_schema_view(
    list=extend_schema(summary="List device groups", responses={200: GroupSerializer(many=True)}),
    retrieve=extend_schema(summary="Show a device group", parameters=[NAME_PARAMETER],
                           responses={200: GroupSerializer}),
    destroy=extend_schema(
        summary="Delete a device group", parameters=[NAME_PARAMETER],
        description="Its devices become ungrouped. Refused (400, code `group_has_children` or `group_in_use`) "
                    "while groups are nested under it or ACL rules name it.",
        responses={204: None, 400: OpenApiResponse(ERROR_SCHEMA, description="The group has nested groups or "
                                                   "ACL rules name it.")}),
)
class GroupViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                   viewsets.GenericViewSet[DeviceGroup]):
    serializer_class = GroupSerializer
    queryset = DeviceGroup.objects.none()  # the model, for the schema; requests use get_queryset
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    ordering = ("name",)
    ordering_fields = ("name", "created")
    keyset_unique = "name"
    filterset_fields: list[str] = []
    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    def get_queryset(self) -> QuerySet[DeviceGroup]:
        return (DeviceGroup.objects.filter(tenant=self.tenant).select_related("parent")
                .annotate(device_count=Count("devices")))

    def get_object(self) -> DeviceGroup:
        group = self.get_queryset().filter(name=self.kwargs["name"]).first()
        if group is None:
            raise not_found(f"No group {self.kwargs['name']!r} in tenant {self.tenant.slug}.",
                            code="group_not_found")
        return group

    def _shown(self, group: DeviceGroup, code: int = 200, **headers: str) -> Response:
        return Response(GroupSerializer(self.get_queryset().get(pk=group.pk)).data, status=code,
                        headers=headers or None)

    @extend_schema(
        summary="Create a device group", request=GroupWriteSerializer, responses={201: GroupSerializer},
        examples=[OpenApiExample("A line in a building", request_only=True,
                                 value={"name": "line-3", "parent": "building-a", "description": "Packaging"})],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = GroupWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = form.validated_data
        parent = group_named(self.tenant, values.get("parent"), field="parent")
        group = create_group(self.tenant, values["name"], parent=parent,
                             description=values.get("description", ""), actor=self.actor)
        location = reverse("v1:group-detail", kwargs={"tenant": self.tenant.slug, "name": group.name},
                           request=request)
        return self._shown(group, status.HTTP_201_CREATED, Location=location)

    @extend_schema(
        summary="Change a device group", parameters=[NAME_PARAMETER], request=GroupWriteSerializer(partial=True),
        description="Rename it, move it under another parent (`null`: to the top) or describe it. A parent "
                    "that would make a cycle is refused (400, field `parent`). Topic filters using `{group}` "
                    "follow a rename at once.",
        responses={200: GroupSerializer},
        examples=[OpenApiExample("Move", request_only=True, value={"parent": "building-b"})],
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        group = self.get_object()
        form = GroupWriteSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        changes = dict(form.validated_data)
        if "parent" in changes:
            changes["parent"] = group_named(self.tenant, changes["parent"], field="parent")
            if changes["parent"] is not None and changes["parent"].pk == group.pk:
                raise bad_request("A group cannot be its own parent.", code="invalid_parent", field="parent")
        if changes:
            group = update_group(group, actor=self.actor, **changes)
        return self._shown(group)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        delete_group(self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
