"""The base of every tenant-scoped API view, and the `/api/v1/` root."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import NoReverseMatch
from django.utils.functional import cached_property
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from devices.audit import Actor
from devices.models import Role, Tenant

from .access import actor_for, tenant_for, visible_tenants
from .errors import bad_request, too_large

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def check_body_size(request: Request, limit: int) -> None:
    """Refuse an oversized body from its Content-Length, before anything is read."""
    raw = (request._request.META.get("CONTENT_LENGTH") or "").strip()
    if not raw:
        return
    if not (raw.isascii() and raw.isdigit()):
        raise bad_request("The Content-Length header is not a number.", code="invalid_content_length")
    if int(raw) > limit:
        raise too_large(f"The request body is larger than {limit} bytes.")


if TYPE_CHECKING:
    # The base of mixins that always come before an APIView in a view's bases: typed as one,
    # they see its request, kwargs and methods; at run time it is nothing.
    APIViewMixin = APIView
else:
    APIViewMixin = object


class BodyLimitMixin(APIViewMixin):
    """Every API view refuses bodies over `max_body_bytes` with 413."""

    max_body_bytes: int = 0  # 0: settings.ROOST_API_MAX_BODY

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        check_body_size(request, self.max_body_bytes or settings.ROOST_API_MAX_BODY)
        super().initial(request, *args, **kwargs)


class TenantScopedMixin(BodyLimitMixin):
    """Views under `tenants/{tenant}/`: the tenant checked against the caller's role.

    `read_role` guards GET/HEAD/OPTIONS, `write_role` every other method; an action can
    override both with `action_roles = {"kick": Role.OPERATOR}`.
    """

    read_role: str = Role.VIEWER
    write_role: str = Role.OPERATOR
    action_roles: dict[str, str] = {}

    def required_role(self) -> str:
        action = getattr(self, "action", None)
        if action and action in self.action_roles:
            return self.action_roles[action]
        return self.read_role if self.request.method in SAFE_METHODS else self.write_role

    @cached_property
    def tenant(self) -> Tenant:
        return tenant_for(self.request, self.kwargs["tenant"], self.required_role())

    @property
    def actor(self) -> Actor:
        return actor_for(self.request)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if getattr(self, "swagger_fake_view", False):
            return
        _ = self.tenant  # the role check, before any handler runs


# The collections the root lists (name -> URL name): under each tenant, and at the top level.
TENANT_ROOTS: dict[str, str] = {}
GLOBAL_ROOTS: dict[str, str] = {}


def register_root(name: str, url_name: str, *, tenant_scoped: bool = True) -> None:
    """List a collection on `/api/v1/`: per tenant (`url_name` takes a `tenant` argument) or once."""
    (TENANT_ROOTS if tenant_scoped else GLOBAL_ROOTS)[name] = url_name


def _links(request: Request, roots: dict[str, str], **kwargs: Any) -> dict[str, str]:
    links = {}
    for name, url_name in sorted(roots.items()):
        try:
            links[name] = reverse(url_name, kwargs=kwargs or None, request=request)
        except NoReverseMatch:
            continue  # an app whose API is not mounted here
    return links


class _TenantRootSerializer(serializers.Serializer[Any]):
    slug = serializers.CharField()
    name = serializers.CharField()
    links = serializers.DictField(child=serializers.URLField(), help_text="Collection name -> URL.")


class ApiRootSerializer(serializers.Serializer[Any]):
    schema = serializers.URLField(help_text="The OpenAPI 3 schema of this API.")
    docs = serializers.URLField(help_text="The interactive documentation (Swagger UI).")
    links = serializers.DictField(child=serializers.URLField(),
                                  help_text="Collections outside any tenant: name -> URL.")
    tenants = _TenantRootSerializer(many=True, help_text="The tenants the caller can see (an API "
                                    "key: its own), each with its collections.")


class ApiRootView(BodyLimitMixin, APIView):
    """The entry point: the caller's tenants and, for each, the collections under it."""

    max_tenants = 200

    @extend_schema(
        summary="List the caller's tenants and their collections", tags=["root"],
        responses={200: ApiRootSerializer},
        examples=[OpenApiExample("An operator key of acme", response_only=True, value={
            "schema": "https://roost.example.com/api/schema/",
            "docs": "https://roost.example.com/api/docs/",
            "links": {"tenants": "https://roost.example.com/api/v1/tenants/"},
            "tenants": [{"slug": "acme", "name": "Acme", "links": {
                "devices": "https://roost.example.com/api/v1/tenants/acme/devices/"}}],
        })],
    )
    def get(self, request: Request) -> Response:
        tenants = [
            {"slug": tenant.slug, "name": tenant.name, "links": _links(request, TENANT_ROOTS, tenant=tenant.slug)}
            for tenant in visible_tenants(request).order_by("slug")[: self.max_tenants]
        ]
        return Response({
            "schema": reverse("schema", request=request),
            "docs": reverse("api-docs", request=request),
            "links": _links(request, GLOBAL_ROOTS),
            "tenants": tenants,
        })
