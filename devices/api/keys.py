"""API keys of a tenant: create (the key shown once), list, revoke. Admin role."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from devices.apikeys import MAX_EXPIRY_DAYS, create_api_key, revoke_api_key
from devices.models import ApiKey, ApiKeyRole, Role
from roost.api.errors import ERROR_SCHEMA, conflict
from roost.api.views import TenantScopedMixin

_EXAMPLE_KEY = {
    "prefix": "rk_3f9a0c21b7d4", "name": "ci", "role": "operator", "created": "2026-01-05T09:30:00Z",
    "created_by": "alice", "expires_at": "2026-04-05T09:30:00Z", "revoked_at": None, "revoked": False,
    "last_used_at": None, "last_used_ip": None,
}


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    revoked = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = ["prefix", "name", "role", "created", "created_by", "expires_at", "revoked_at",
                  "revoked", "last_used_at", "last_used_ip"]
        read_only_fields = fields

    def get_revoked(self, obj: ApiKey) -> bool:
        return obj.revoked_at is not None


class ApiKeyCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    role = serializers.ChoiceField(choices=ApiKeyRole.choices)
    expires_days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_EXPIRY_DAYS,
                                            help_text="Days until the key stops working; empty: never.")


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The secret, shown this once; only its hash is kept.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyFilter(django_filters.FilterSet):
    revoked = django_filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull", exclude=True,
                                           help_text="true: only revoked keys; false: only keys not revoked.")

    class Meta:
        model = ApiKey
        fields = ["role"]


@extend_schema_view(
    list=extend_schema(summary="List the tenant's API keys",
                       description="Never shows a key's secret; `prefix` identifies it. Admin role."),
    retrieve=extend_schema(summary="Show one API key", responses={200: ApiKeySerializer, 404: ERROR_SCHEMA},
                           examples=[OpenApiExample("A CI key", value=_EXAMPLE_KEY, response_only=True)]),
    destroy=extend_schema(summary="Revoke an API key", description="The next request with it is refused; "
                          "MQTT service clients using it are disconnected.",
                          responses={204: None, 404: ERROR_SCHEMA, 409: ERROR_SCHEMA}),
)
class ApiKeyViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    mixins.DestroyModelMixin, viewsets.GenericViewSet[ApiKey]):
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    serializer_class = ApiKeySerializer
    lookup_field = "prefix"
    lookup_value_regex = r"rk_[0-9a-f]{12}"
    ordering = ("-created", "-id")
    ordering_fields = ("created", "name")
    filterset_class = ApiKeyFilter
    queryset = ApiKey.objects.none()  # the model, for the schema; requests use get_queryset

    def get_queryset(self) -> QuerySet[ApiKey]:
        return ApiKey.objects.filter(tenant=self.tenant)

    @extend_schema(
        summary="Create an API key", request=ApiKeyCreateSerializer,
        description="The response carries the key itself (`key`) this once; only its hash is stored. "
                    "Send it as `Authorization: Bearer <key>`. Admin role.",
        responses={201: ApiKeyCreatedSerializer, 400: ERROR_SCHEMA},
        examples=[
            OpenApiExample("CI pipeline", value={"name": "ci", "role": "operator", "expires_days": 90},
                           request_only=True),
            OpenApiExample("Created", response_only=True, status_codes=["201"], value={
                **_EXAMPLE_KEY, "key": "rk_3f9a0c21b7d4_" + "x" * 43}),
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = ApiKeyCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        new = create_api_key(self.tenant, actor=self.actor, **form.validated_data)
        body = {**ApiKeySerializer(new.api_key).data, "key": new.key}
        location = reverse("v1:api-key-detail", kwargs={"tenant": self.tenant.slug, "prefix": new.api_key.prefix},
                           request=request)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    def perform_destroy(self, instance: ApiKey) -> None:
        if instance.revoked_at is not None:
            raise conflict(f"The key {instance.prefix} is already revoked.", code="already_revoked")
        revoke_api_key(instance, actor=self.actor)
