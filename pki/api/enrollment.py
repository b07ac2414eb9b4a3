"""Fleet provisioning by claim: enrollment tokens (admin role) and `POST /api/v1/enroll`, where a
device presents a token, its name and a CSR, and gets its certificate."""

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
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from devices.models import Role
from roost.api.errors import ERROR_SCHEMA
from roost.api.views import BodyLimitMixin, TenantScopedMixin

from ..csr import MAX_CSR_BYTES
from ..enrollment import create_token, enroll, find_token, revoke_token
from ..models import EnrollmentToken
from .filters import EnrollmentTokenFilter
from .serializers import (
    EnrollmentTokenCreatedSerializer,
    EnrollmentTokenCreateSerializer,
    EnrollmentTokenSerializer,
    EnrollRequestSerializer,
    IssuedCertificateSerializer,
    issued_body,
)

# The JSON envelope around a CSR: the CSR limit plus room for the token, name and quoting.
MAX_ENROLL_BODY = MAX_CSR_BYTES + 4096

PREFIX_PARAMETER = OpenApiParameter(
    "prefix", str, OpenApiParameter.PATH,
    description="The token's public prefix, shown at creation and in the list (`roost_enr_` and six characters).")


class EnrollView(BodyLimitMixin, APIView):
    """A device claims its identity: token + desired name + CSR → certificate and chain."""

    authentication_classes: list[Any] = []  # devices have no session or key; the token is the credential
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "enroll"  # ROOST_ENROLL_RATE per client address
    max_body_bytes = MAX_ENROLL_BODY

    @extend_schema(
        summary="Enroll a device with an enrollment token",
        description="Registers the device in the token's tenant (and group, with its attribute template) and "
                    "certifies the CSR's key, all or nothing; one use of the token. No API key: the token is "
                    "the credential. Rate limited per client address (ROOST_ENROLL_RATE).",
        auth=[],
        request=EnrollRequestSerializer,
        responses={201: IssuedCertificateSerializer,
                   403: OpenApiResponse(ERROR_SCHEMA, description="Unknown, disabled, expired or used-up token, "
                                                                  "or a disabled tenant."),
                   409: OpenApiResponse(ERROR_SCHEMA, description="The name is taken, or the key is certified "
                                                                  "for another device.")},
    )
    def post(self, request: Request) -> Response:
        form = EnrollRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = form.validated_data
        issued = enroll(values["token"], values["name"], values["csr"],
                        source=request._request.META.get("REMOTE_ADDR", ""))
        return Response(issued_body(issued), status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="List the tenant's enrollment tokens",
                       description="The secrets are never shown again; tokens are listed by prefix.",
                       parameters=[OpenApiParameter("enabled", bool, description="Only enabled (true) or revoked "
                                                    "(false) tokens.")],
                       responses={200: EnrollmentTokenSerializer(many=True)}),
    retrieve=extend_schema(summary="Show an enrollment token", parameters=[PREFIX_PARAMETER],
                           responses={200: EnrollmentTokenSerializer}),
    destroy=extend_schema(
        summary="Revoke an enrollment token",
        description="Disables the token for good: the next enrollment with it is refused. The token stays "
                    "listed (enabled: false) for the audit trail; devices it enrolled are not touched.",
        parameters=[PREFIX_PARAMETER],
        responses={204: None, 409: OpenApiResponse(ERROR_SCHEMA, description="Already revoked.")}),
)
class EnrollmentTokenViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                             mixins.DestroyModelMixin, viewsets.GenericViewSet[EnrollmentToken]):
    """`enrollment-tokens/`: admin role for everything, reads included (tokens provision devices)."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN
    serializer_class = EnrollmentTokenSerializer
    queryset = EnrollmentToken.objects.none()  # the model, for the schema; requests use get_queryset
    lookup_field = "prefix"
    lookup_value_regex = r"[^/]+"
    filterset_class = EnrollmentTokenFilter
    ordering = ("-created", "-id")
    ordering_fields = ("created", "expires_at")
    max_body_bytes = 64 * 1024

    def get_queryset(self) -> QuerySet[EnrollmentToken]:
        return EnrollmentToken.objects.filter(tenant=self.tenant).select_related("group")

    def get_object(self) -> EnrollmentToken:
        return find_token(self.tenant, self.kwargs["prefix"])

    @extend_schema(
        summary="Create an enrollment token",
        description="The secret (`token`) is in this answer only; Roost keeps its SHA-256.",
        request=EnrollmentTokenCreateSerializer,
        responses={201: EnrollmentTokenCreatedSerializer},
        examples=[OpenApiExample("A factory batch", request_only=True,
                                 value={"uses": 500, "expires": "7d", "attributes": {"site": "plant-2"},
                                        "label": "batch 2024-11"})],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = EnrollmentTokenCreateSerializer(data=request.data, context={"tenant": self.tenant})
        form.is_valid(raise_exception=True)
        values = form.validated_data
        new = create_token(self.tenant, uses=values["uses"], expires_in=values["expires"], group=values["group"],
                           attributes=values["attributes"], label=values["label"], actor=self.actor)
        body = EnrollmentTokenCreatedSerializer(new.token).data | {"token": new.secret}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    def perform_destroy(self, instance: EnrollmentToken) -> None:
        revoke_token(instance, actor=self.actor)
