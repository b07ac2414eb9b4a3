"""API keys of a tenant: create (the key shown once), list, revoke. Admin role."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from devices.apikeys import create_api_key, revoke_api_key
from devices.models import ApiKey, ApiKeyRole, Role
from roost.api.errors import ERROR_SCHEMA
from roost.api.views import TenantScopedMixin


class ApiKeySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    revoked = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = ["prefix", "name", "role", "created", "created_by", "expires_at", "revoked_at",
                  "revoked", "last_used_at", "last_used_ip"]
        read_only_fields = fields

    def get_revoked(self, obj: ApiKey) -> bool:
        return obj.revoked_at is not None


class ApiKeyCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    role = serializers.ChoiceField(choices=ApiKeyRole.choices)
    expires_days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=3650,
                                            help_text="Days until the key stops working; empty: never.")


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The secret, shown this once; only its hash is kept.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(summary="List the tenant's API keys", responses={200: ApiKeySerializer(many=True)}),
    retrieve=extend_schema(summary="Show one API key", responses={200: ApiKeySerializer, 404: ERROR_SCHEMA}),
    destroy=extend_schema(summary="Revoke an API key", description="The next request with it is refused; "
                          "MQTT service clients using it are disconnected.",
                          responses={204: None, 404: ERROR_SCHEMA, 409: ERROR_SCHEMA}),
)
class ApiKeyViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    mixins.DestroyModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    serializer_class = ApiKeySerializer
    lookup_field = "prefix"
    lookup_value_regex = r"rk_[0-9a-f]{12}"
    ordering = ("-created", "-id")
    ordering_fields = ("created", "name", "last_used_at")
    queryset = ApiKey.objects.none()  # the model, for the schema; requests use get_queryset

    def get_queryset(self) -> QuerySet[ApiKey]:
        return ApiKey.objects.filter(tenant=self.tenant)

    @extend_schema(
        summary="Create an API key", request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer, 400: ERROR_SCHEMA},
        examples=[OpenApiExample("CI pipeline", value={"name": "ci", "role": "operator", "expires_days": 90},
                                 request_only=True)],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = ApiKeyCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        new = create_api_key(self.tenant, actor=self.actor, **form.validated_data)
        body = ApiKeyCreatedSerializer(new.api_key).data | {"key": new.key}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiKey) -> None:
        if instance.revoked_at is not None:
            from roost.api.errors import conflict

            raise conflict(f"The key {instance.prefix} is already revoked.", code="already_revoked")
        revoke_api_key(instance, actor=self.actor)
