"""`tenants/` at the top of the API: members see their tenants (an API key: its own), platform
staff see all; only staff create, change and delete tenants."""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, OuterRef, QuerySet, Subquery, Value
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from roost.api.access import api_key_of, is_platform_staff, session_user, visible_tenants
from roost.api.errors import forbidden, not_found
from roost.api.views import BodyLimitMixin

from ..models import Membership, Tenant
from ..services import create_tenant, delete_tenant, update_tenant
from .serializers import TenantCreateSerializer, TenantSerializer, TenantUpdateSerializer

SLUG_PARAMETER = OpenApiParameter("slug", str, OpenApiParameter.PATH, description="The tenant's slug.")
_STAFF_ONLY = "Platform staff only (403 for members and API keys)."


def require_staff(request: Request, doing: str) -> None:
    if not is_platform_staff(request.user):
        raise forbidden(f"Only platform staff may {doing}.", code="staff_only")


@extend_schema_view(
    list=extend_schema(summary="List tenants",
                       description="The tenants the caller belongs to (an API key: its own tenant); "
                                   "platform staff see every tenant.",
                       responses={200: TenantSerializer(many=True)}),
    retrieve=extend_schema(summary="Show a tenant", parameters=[SLUG_PARAMETER], responses={200: TenantSerializer}),
    destroy=extend_schema(summary="Delete a tenant and everything in it", parameters=[SLUG_PARAMETER],
                          description="Its devices are disconnected; its devices, certificates, rules, keys and "
                                      "retained messages are deleted. " + _STAFF_ONLY,
                          responses={204: None}),
)
class TenantViewSet(BodyLimitMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    viewsets.GenericViewSet[Tenant]):
    serializer_class = TenantSerializer
    queryset = Tenant.objects.none()  # the model, for the schema; requests use get_queryset
    lookup_field = "slug"
    lookup_value_regex = r"[^/]+"
    ordering = ("slug",)
    ordering_fields = ("slug", "created")
    keyset_unique = "slug"
    filterset_fields = ["enabled"]

    def get_queryset(self) -> QuerySet[Tenant]:
        key = api_key_of(self.request)
        if key is not None:
            role: Any = Value(key.role, output_field=CharField())
        elif (user := session_user(self.request)) is not None:
            role = Subquery(Membership.objects.filter(tenant=OuterRef("pk"), user=user)
                            .values("role")[:1], output_field=CharField())
        else:
            role = Value(None, output_field=CharField())
        # pk__in rather than the visible set's join: no DISTINCT for the cursor to page over.
        visible = visible_tenants(self.request).values("pk")
        return Tenant.objects.filter(pk__in=visible).annotate(caller_role=role)

    def get_object(self) -> Tenant:
        tenant = self.get_queryset().filter(slug=self.kwargs["slug"]).first()
        if tenant is None:
            raise not_found(f"No tenant {self.kwargs['slug']!r}.", code="tenant_not_found")
        return tenant

    def _shown(self, tenant: Tenant, code: int = 200, **headers: str) -> Response:
        return Response(TenantSerializer(self.get_queryset().get(pk=tenant.pk)).data, status=code,
                        headers=headers or None)

    @extend_schema(summary="Create a tenant", description=_STAFF_ONLY, request=TenantCreateSerializer,
                   responses={201: TenantSerializer},
                   examples=[OpenApiExample("A customer", request_only=True, value={"slug": "acme", "name": "Acme"})])
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        require_staff(request, "create tenants")
        form = TenantCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        tenant = create_tenant(form.validated_data["slug"], form.validated_data["name"],
                               actor=self._actor())
        location = reverse("v1:tenant-detail", kwargs={"slug": tenant.slug}, request=request)
        return self._shown(tenant, status.HTTP_201_CREATED, Location=location)

    @extend_schema(summary="Rename, enable or disable a tenant", parameters=[SLUG_PARAMETER],
                   description="A disabled tenant's devices are disconnected at once and refused, and its API "
                               "keys stop working, until it is enabled again. " + _STAFF_ONLY,
                   request=TenantUpdateSerializer, responses={200: TenantSerializer},
                   examples=[OpenApiExample("Disable", request_only=True, value={"enabled": False})])
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        tenant = self.get_object()
        require_staff(request, "change tenants")
        form = TenantUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        tenant = update_tenant(tenant, actor=self._actor(), **form.validated_data)
        return self._shown(tenant)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        tenant = self.get_object()
        require_staff(request, "delete tenants")
        delete_tenant(tenant, actor=self._actor())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _actor(self) -> Any:
        from roost.api.access import actor_for

        return actor_for(self.request)
