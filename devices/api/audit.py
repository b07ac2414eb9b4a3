"""`audit-events/`: the tenant's audit trail, read-only, newest first. Admin role: it shows who
did what (user names, key names, before/after values), which a viewer need not see."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets

from roost.api.views import TenantScopedMixin

from ..models import AuditEvent, Role
from .filters import AuditEventFilter
from .serializers import AuditEventSerializer


@extend_schema_view(
    list=extend_schema(summary="List audit events",
                       description="Who changed what in this tenant, newest first (admin role). Writes made with "
                                   "an API key name it as `api-key:NAME`.",
                       responses={200: AuditEventSerializer(many=True)}),
    retrieve=extend_schema(summary="Show an audit event",
                           parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
                           responses={200: AuditEventSerializer}),
)
class AuditEventViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        viewsets.GenericViewSet[AuditEvent]):
    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.none()  # the model, for the schema; requests use get_queryset
    lookup_value_regex = r"[0-9]{1,18}"
    filterset_class = AuditEventFilter
    ordering = ("-created", "-id")
    ordering_fields = ("created",)
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(tenant=self.tenant)
