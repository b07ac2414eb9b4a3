"""OpenAPI additions: the Bearer scheme, tags by collection, the error responses every
operation can give, and links from each create to what can be done with the created object
(what schemathesis' stateful phase follows)."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from .errors import ERROR_SCHEMA


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "roost.api.authentication.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "A tenant API key (rk_…)."}


class ApiAutoSchema(AutoSchema):
    """Tag operations by their collection (`devices`, `acl`, …) rather than by the first
    path segment, which under /api/v1/tenants/{tenant}/ would put everything in one tag."""

    def get_tags(self) -> list[str]:
        tokens = self._tokenize_path()
        if len(tokens) > 1 and tokens[0] == "tenants":
            return [tokens[1]]
        return tokens[:1] or ["root"]


_COMMON = {
    "400": "The request is invalid; `field` names the input at fault.",
    "401": "No credentials, or an unknown, revoked or expired API key.",
    "403": "The caller's role in this tenant is too low for this operation.",
    "404": "No such object in this tenant, or a tenant the caller cannot see.",
    "413": "The request body is over the limit.",
    "406": "The `Accept` header asks for a representation this operation cannot give.",
    "415": "The body's `Content-Type` is not one this operation reads (send application/json).",
    "429": "Too many requests for this key; retry after `Retry-After` seconds.",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before the next request.",
                                "schema": {"type": "integer", "minimum": 1}}}


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
            # 400: any parameter or header can be malformed (a Content-Length, a cursor).
            wanted = ["400", "401", "403", "406", "429"]
            if "{" in path:
                wanted.append("404")
            if method in {"put", "patch", "post"}:
                wanted += ["413", "415"]
            for entry in responses.values():  # ERROR_SCHEMA given inline by a view: one component
                for media in (entry.get("content") or {}).values():
                    if media.get("schema") == ERROR_SCHEMA:
                        media["schema"] = ref
            for code in wanted:
                entry = responses.get(code)
                if entry is None or not entry.get("content"):
                    responses[code] = {"description": (entry or {}).get("description") or _COMMON[code],
                                       "content": {"application/json": {"schema": ref}}}
            if "429" in responses:
                responses["429"].setdefault("headers", {}).update(_RETRY_AFTER)
    return result


# Links ---------------------------------------------------------------------------------------

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _resolve(schema: dict[str, Any] | None, components: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while schema and "$ref" in schema and seen < 10:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
        seen += 1
    return schema or {}


def _properties(schema: dict[str, Any] | None, components: dict[str, Any]) -> dict[str, Any]:
    schema = _resolve(schema, components)
    found = dict(schema.get("properties") or {})
    for part in schema.get("allOf") or []:
        found.update(_properties(part, components))
    return found


def _json_schema(response: dict[str, Any]) -> dict[str, Any] | None:
    content = response.get("content") or {}
    media = content.get("application/json") or next(iter(content.values()), None)
    return (media or {}).get("schema")


def _object_fields(response: dict[str, Any], components: dict[str, Any]) -> tuple[str, set[str]]:
    """(JSON pointer prefix, field names) of the object a response carries: the body itself,
    or the first result of a paginated list."""
    props = _properties(_json_schema(response), components)
    if "results" in props and set(props) <= {"next", "previous", "results", "count"}:
        items = _resolve(props["results"], components).get("items")
        return "/results/0", set(_properties(items, components))
    return "", set(props)


def add_links(result: dict[str, Any], generator: Any, request: Any, public: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: OpenAPI links from a create to every operation on
    the created object's path below the collection (and from a list to the reads of its first
    result), filling the lookup from the response body and the rest from the request's path."""
    components = result.get("components", {}).get("schemas", {})
    paths: dict[str, dict[str, Any]] = result.get("paths", {})
    for source_path, item in paths.items():
        source_params = set(_PARAM.findall(source_path))
        for method in ("post", "get"):
            operation = item.get(method)
            if operation is None:
                continue
            codes = ["201", "200", "202"] if method == "post" else ["200"]
            for code in codes:
                response = operation.get("responses", {}).get(code)
                if response is None:
                    continue
                pointer, fields = _object_fields(response, components)
                if method == "get" and not pointer:
                    continue  # a retrieve: links from its create are enough
                # From a list, only reads: a client deletes what it made, not whatever came first.
                methods = {"get"} if pointer else {"get", "put", "patch", "post", "delete"}
                links = _links_from(source_path, source_params, pointer, fields, paths, methods)
                if links:
                    response.setdefault("links", {}).update(links)
    return result


def _links_from(source_path: str, source_params: set[str], pointer: str, fields: set[str],
                paths: dict[str, dict[str, Any]], methods: set[str]) -> dict[str, Any]:
    links: dict[str, Any] = {}
    collection = source_path if source_path.endswith("/") else source_path + "/"
    below = {path: _PARAM.match(path[len(collection):]) for path in paths if path.startswith(collection)}
    # Apps may name the same lookup differently (`devices/{name}/` and `devices/{device}/…`):
    # a parameter the body lacks takes the collection's own lookup field.
    own = sorted(m.group(1) for m in below.values() if m is not None and m.group(1) in fields)
    for target_path, match in below.items():
        if match is None:
            continue
        lookup = match.group(1)
        field = lookup if lookup in fields else (own[0] if own else None)
        if field is None or (field != lookup and lookup == "tenant"):
            continue  # a new tenant's contents are reached from that tenant, not from its creation
        target_item = paths[target_path]
        parameters: dict[str, str] = {}
        for name in _PARAM.findall(target_path):
            if name == lookup:
                parameters[name] = f"$response.body#{pointer}/{field}"
            elif name in source_params:
                parameters[name] = f"$request.path.{name}"
            else:
                break
        else:
            for target_method, target in target_item.items():
                operation_id = target.get("operationId") if isinstance(target, dict) else None
                if target_method in methods and operation_id:
                    links[operation_id] = {"operationId": operation_id, "parameters": parameters}
    return links
