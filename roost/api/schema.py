"""OpenAPI additions: the Bearer scheme, and the error responses every operation can give."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from .errors import ERROR_SCHEMA


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "roost.api.authentication.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "A tenant API key (rk_…)."}


_COMMON = {
    "400": "The request is invalid; `field` names the input at fault.",
    "401": "No credentials, or an unknown, revoked or expired API key.",
    "403": "The caller's role in this tenant is too low for this operation.",
    "404": "No such object in this tenant, or a tenant the caller cannot see.",
    "413": "The request body is over the limit.",
    "429": "Too many requests for this key; retry after `Retry-After` seconds.",
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the shared Error body on every operation's 4xx."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in {"get", "put", "patch", "post", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            wanted = ["401", "403", "429"]
            if "{" in path:
                wanted.append("404")
            if method in {"put", "patch", "post"}:
                wanted += ["400", "413"]
            if method == "get" and operation.get("parameters"):
                wanted.append("400")
            for code in wanted:
                entry = responses.get(code)
                if entry is None or not entry.get("content"):
                    responses[code] = {"description": (entry or {}).get("description") or _COMMON[code],
                                       "content": {"application/json": {"schema": ref}}}
    return result
