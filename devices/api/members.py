"""`members/`: who belongs to the tenant, with which role. Admin role for everything.

Nobody grants a role above their own or changes a member ranked above them: only an owner
grants or takes away ownership, and an admin (or an admin API key) cannot touch an owner.
The last owner can be neither demoted nor removed. The rules live in devices/services.py.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
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

from roost.api.access import role_in
from roost.api.errors import ERROR_SCHEMA, not_found
from roost.api.views import TenantScopedMixin

from ..models import Membership, Role
from ..services import change_member_role, find_user, invite_member, remove_member
from .serializers import MemberInviteSerializer, MemberSerializer, MemberUpdateSerializer

USERNAME_PARAMETER = OpenApiParameter("username", str, OpenApiParameter.PATH, description="The member's username.")
_RULES = ("Nobody grants a role above their own or changes a member who ranks above them (403): only an owner "
          "grants or takes away the owner role. The tenant's last owner cannot be demoted or removed (400, code "
          "`last_owner`).")


@extend_schema_view(
    list=extend_schema(summary="List the tenant's members", responses={200: MemberSerializer(many=True)}),
    retrieve=extend_schema(summary="Show a member", parameters=[USERNAME_PARAMETER],
                           responses={200: MemberSerializer}),
    destroy=extend_schema(summary="Remove a member", parameters=[USERNAME_PARAMETER], description=_RULES,
                          responses={204: None, 400: OpenApiResponse(ERROR_SCHEMA, description="The last owner.")}),
)
class MemberViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    viewsets.GenericViewSet[Membership]):
    serializer_class = MemberSerializer
    queryset = Membership.objects.none()  # the model, for the schema; requests use get_queryset
    lookup_field = "username"
    lookup_value_regex = r"[^/]+"
    ordering = ("created",)
    ordering_fields = ("created",)
    filterset_fields: list[str] = []
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    def get_queryset(self) -> QuerySet[Membership]:
        return Membership.objects.filter(tenant=self.tenant).select_related("user", "tenant")

    def get_object(self) -> Membership:
        membership = self.get_queryset().filter(user__username=self.kwargs["username"]).first()
        if membership is None:
            raise not_found(f"{self.kwargs['username']!r} is not a member of {self.tenant.slug}.",
                            code="member_not_found")
        return membership

    @property
    def acting_role(self) -> str | None:
        return role_in(self.request, self.tenant)

    @extend_schema(
        summary="Invite an existing user", request=MemberInviteSerializer, description=_RULES,
        responses={201: MemberSerializer, 400: OpenApiResponse(ERROR_SCHEMA, description="No such user, or "
                   "already a member (code `already_member`).")},
        examples=[OpenApiExample("By email", request_only=True, value={"user": "dana@example.com",
                                                                        "role": "operator"})],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = MemberInviteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = find_user(form.validated_data["user"])
        membership = invite_member(self.tenant, user, form.validated_data["role"], actor=self.actor,
                                   acting_role=self.acting_role)
        location = reverse("v1:member-detail", kwargs={"tenant": self.tenant.slug, "username": user.username},
                           request=request)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED,
                        headers={"Location": location})

    @extend_schema(
        summary="Change a member's role", parameters=[USERNAME_PARAMETER], request=MemberUpdateSerializer,
        description=_RULES, responses={200: MemberSerializer},
        examples=[OpenApiExample("Promote", request_only=True, value={"role": "admin"})],
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        membership = self.get_object()
        form = MemberUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        membership = change_member_role(membership, form.validated_data["role"], actor=self.actor,
                                        acting_role=self.acting_role)
        return Response(MemberSerializer(membership).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        remove_member(self.get_object(), actor=self.actor, acting_role=self.acting_role)
        return Response(status=status.HTTP_204_NO_CONTENT)
