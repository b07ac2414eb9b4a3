"""The schema and the interactive documentation, served from installed packages only.

`/api/schema/` answers YAML to tools (`Accept: */*`), JSON to `?format=json` or
`Accept: application/json`, and a readable page to a browser (`Accept: text/html`) instead
of a download. `/api/docs/` (Swagger UI) and `/api/redoc/` (ReDoc) load their scripts from
drf-spectacular-sidecar under /static/, and a Content-Security-Policy keeps the browser from
fetching anything elsewhere (ReDoc's template asks for Google Fonts and its sidebar for a
logo on a CDN; Swagger UI would send the schema to validator.swagger.io).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.template import engines
from django.urls import reverse
from django.utils.html import escape
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.renderers import BaseRenderer, TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response

# Everything from this origin; inline scripts and styles because both UIs' pages use them;
# blob: workers for ReDoc's search.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
            "frame-ancestors 'self'; base-uri 'self'; form-action 'self'")


class SchemaPageRenderer(BaseRenderer):
    """The schema as a page a browser shows: the YAML text, with links to the other forms."""

    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Mapping[str, Any] | None = None) -> bytes:
        yaml_text = OpenApiYamlRenderer().render(data).decode()
        title = escape((data.get("info") or {}).get("title", "API schema")) if isinstance(data, dict) else "API schema"
        links = " · ".join(f'<a href="{escape(href)}">{label}</a>' for label, href in (
            ("JSON", "?format=json"), ("YAML download", "?format=yaml"),
            ("Swagger UI", reverse("api-docs")), ("ReDoc", reverse("api-redoc")),
        ))
        page = (
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title} — OpenAPI schema</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:1.5rem}"
            "pre{background:#f6f8fa;padding:1rem;overflow:auto;font-size:13px}</style></head>"
            f"<body><h1>{title} — OpenAPI 3 schema</h1><p>{links}</p>"
            f"<pre>{escape(yaml_text)}</pre></body></html>"
        )
        return page.encode("utf-8")


class SchemaView(SpectacularAPIView):
    # Tools asking for anything get YAML, as before; `?format=json` prefers plain
    # application/json, which browsers display rather than download.
    renderer_classes = [OpenApiYamlRenderer, OpenApiYamlRenderer2, OpenApiJsonRenderer2,
                        OpenApiJsonRenderer, SchemaPageRenderer]

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # drf-spectacular leaves get() unannotated (untyped_calls_exclude misses super() calls).
        response: Response = super().get(request, *args, **kwargs)  # type: ignore[no-untyped-call]
        if getattr(request, "accepted_renderer", None) is not None and \
                isinstance(request.accepted_renderer, SchemaPageRenderer):
            response["Content-Security-Policy"] = DOCS_CSP
        return response


class SwaggerView(SpectacularSwaggerView):
    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # drf-spectacular leaves get() unannotated (untyped_calls_exclude misses super() calls).
        response: Response = super().get(request, *args, **kwargs)  # type: ignore[no-untyped-call]
        response["Content-Security-Policy"] = DOCS_CSP
        return response


_REDOC_PAGE = """{% extends "drf_spectacular/redoc.html" %}
{% block head %}
<title>{{ title|default:"Redoc" }}</title>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { margin: 0; padding: 0; }</style>
{% endblock head %}
"""


class _RedocRenderer(TemplateHTMLRenderer):
    """drf-spectacular's ReDoc page without its Google Fonts links (ReDoc falls back to
    the browser's own fonts)."""

    def resolve_template(self, template_names: Iterable[str]) -> Any:
        return engines["django"].from_string(_REDOC_PAGE)


class RedocView(SpectacularRedocView):
    renderer_classes = [_RedocRenderer]

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # drf-spectacular leaves get() unannotated (untyped_calls_exclude misses super() calls).
        response: Response = super().get(request, *args, **kwargs)  # type: ignore[no-untyped-call]
        response["Content-Security-Policy"] = DOCS_CSP
        return response
