"""Binary answers of the issuance endpoint, chosen by the Accept header: the PKCS#12 file and
the zip of PEM files. Errors are always JSON, whatever was negotiated."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from roost.api.errors import bad_request
from roost.api.views import APIViewMixin

PKCS12 = "application/x-pkcs12"
ZIP = "application/zip"


class _BytesRenderer(BaseRenderer):
    """Passes the bytes the view built through; anything else is a programming error."""

    charset = None
    render_style = "binary"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Mapping[str, Any] | None = None) -> bytes:
        if not isinstance(data, bytes):
            raise TypeError(f"{type(self).__name__} renders bytes, not {type(data).__name__}")
        return data


class Pkcs12Renderer(_BytesRenderer):
    media_type = PKCS12
    format = "p12"


class PemZipRenderer(_BytesRenderer):
    media_type = ZIP
    format = "zip"


BINARY_RENDERERS = (Pkcs12Renderer, PemZipRenderer)


class JsonErrorsMixin(APIViewMixin):
    """An error answer is rendered as JSON even when the client asked for a binary type:
    the shared error body has no .p12 or zip form."""

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        if response.status_code >= 400 and isinstance(getattr(request, "accepted_renderer", None),
                                                      BINARY_RENDERERS):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class StrictFormatNegotiation(DefaultContentNegotiation):
    """`?format=` names one of the view's formats or is a 400 on that parameter; DRF would
    ignore an empty value and answer an unknown one with a bare 404."""

    def select_renderer(self, request: Request, renderers: Iterable[BaseRenderer],
                        format_suffix: str | None = None) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)  # read twice
        wanted = request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        known = [r.format for r in renderers]
        if wanted is not None and wanted not in known:
            raise bad_request(f"Unknown format {wanted!r}; use one of {', '.join(known)}, or an Accept header.",
                              code="invalid_format", field="format")
        chosen: tuple[BaseRenderer, str] = super().select_renderer(request, renderers, format_suffix)
        return chosen
