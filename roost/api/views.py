"""The base of every tenant-scoped API view, and the `/api/v1/` root."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.functional import cached_property
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from devices.audit import Actor
from devices.models import Role, Tenant

from .access import actor_for, tenant_for, visible_tenants
from .errors import too_large

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def check_body_size(request: Request, limit: int) -> None:
    """Refuse an oversized body from its Content-Length, before anything is read."""
    raw = request._request.META.get("CONTENT_LENGTH") or ""
    if raw and (not raw.isdigit() or int(raw) > limit):
        raise too_large(f"The request body is larger than {limit} bytes.")


class BodyLimitMixin:
    """Every API view refuses bodies over `max_body_bytes` with 413."""

    max_body_bytes: int = 0  # 0: settings.ROOST_API_MAX_BODY

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        check_body_size(request, self.max_body_bytes or settings.ROOST_API_MAX_BODY)
        super().initial(request, *args, **kwargs)  # type: ignore[misc]


class TenantScopedMixin(BodyLimitMixin):
    """Views under `tenants/{tenant}/`: the tenant checked against the caller's role.

    `read_role` guards GET/HEAD/OPTIONS, `write_role` every other method; an action can
    override both with `action_roles = {"kick": Role.OPERATOR}`.
    """

    read_role: str = Role.VIEWER
    write_role: str = Role.OPERATOR
    action_roles: dict[str, str] = {}
    request: Request
    kwargs: dict[str, Any]

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


# The tenant-scoped collections, as listed by the root (name → URL name).
TENANT_ROOTS: dict[str, str] = {}


def register_root(name: str, url_name: str) -> None:
    TENANT_ROOTS[name] = url_name


class ApiRootView(BodyLimitMixin, APIView):
    """The entry point: the caller's tenants and, for each, the collections under it."""

    @extend_schema(responses={200: dict}, summary="List the caller's tenants and their API roots")
    def get(self, request: Request) -> Response:
        tenants = []
        for tenant in visible_tenants(request).order_by("slug")[:200]:
            links = {}
            for name, url_name in TENANT_ROOTS.items():
                try:
                    links[name] = reverse(url_name, kwargs={"tenant": tenant.slug}, request=request)
                except Exception:  # noqa: S112 - a root not mounted here is simply not listed
                    continue
            tenants.append({"slug": tenant.slug, "name": tenant.name, "links": links})
        return Response({
            "schema": reverse("schema", request=request),
            "docs": reverse("api-docs", request=request),
            "tenants": tenants,
        })
