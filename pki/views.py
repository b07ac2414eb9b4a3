"""Public PKI endpoints: CRLs, the OCSP responder and CA certificates. No authentication, by design."""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from .ca import chain_pem, ensure_root_ca, get_ca
from .errors import PkiError
from .ocsp import MAX_REQUEST_BYTES, respond
from .revocation import current_crl


def _error(exc: PkiError) -> HttpResponse:
    return HttpResponse(exc.message + "\n", status=exc.status, content_type="text/plain; charset=utf-8")


def _cacheable(response: HttpResponse, seconds: int) -> HttpResponse:
    response["Cache-Control"] = f"public, max-age={seconds}"
    return response


@require_GET
def crl_der(request: HttpRequest, ca_id: int) -> HttpResponse:
    try:
        der = current_crl(get_ca(ca_id))
    except PkiError as exc:
        return _error(exc)
    return _cacheable(HttpResponse(der, content_type="application/pkix-crl"), 300)


@require_GET
def crl_pem(request: HttpRequest, ca_id: int) -> HttpResponse:
    try:
        der = current_crl(get_ca(ca_id))
    except PkiError as exc:
        return _error(exc)
    crl = x509.load_der_x509_crl(der)
    body = crl.public_bytes(serialization.Encoding.PEM)
    return _cacheable(HttpResponse(body, content_type="application/x-pem-file"), 300)


@require_GET
def root_pem(request: HttpRequest) -> HttpResponse:
    root, _ = ensure_root_ca()
    return _cacheable(HttpResponse(root.certificate_pem, content_type="application/x-pem-file"), 3600)


@require_GET
def ca_pem(request: HttpRequest, ca_id: int) -> HttpResponse:
    """The CA's certificate followed by its issuers up to the root."""
    try:
        ca = get_ca(ca_id)
    except PkiError as exc:
        return _error(exc)
    return _cacheable(HttpResponse(chain_pem(ca), content_type="application/x-pem-file"), 3600)


@require_GET
def ca_der(request: HttpRequest, ca_id: int) -> HttpResponse:
    """The CA certificate alone in DER: the target of the caIssuers URL in issued certificates."""
    try:
        ca = get_ca(ca_id)
    except PkiError as exc:
        return _error(exc)
    der = x509.load_pem_x509_certificate(ca.certificate_pem.encode()).public_bytes(serialization.Encoding.DER)
    return _cacheable(HttpResponse(der, content_type="application/pkix-cert"), 3600)


def _ocsp_response(der: bytes) -> HttpResponse:
    response = HttpResponse(der, content_type="application/ocsp-response")
    response["Cache-Control"] = "no-cache"
    return response


@csrf_exempt  # OCSP clients are not browsers; the request is signed data, not a session action
@require_http_methods(["POST"])
def ocsp_post(request: HttpRequest) -> HttpResponse:
    length = request.META.get("CONTENT_LENGTH") or ""
    # Refused on the declared length before anything is read.
    if length and (not length.isdigit() or int(length) > MAX_REQUEST_BYTES):
        return HttpResponse("OCSP request too large\n", status=413, content_type="text/plain")
    body = request.body
    if len(body) > MAX_REQUEST_BYTES:
        return HttpResponse("OCSP request too large\n", status=413, content_type="text/plain")
    return _ocsp_response(respond(body))


@require_GET
def ocsp_get(request: HttpRequest, encoded: str) -> HttpResponse:
    """RFC 6960 A.1: GET {url}/{url-encoding of base-64 encoding of the DER OCSPRequest}."""
    if len(encoded) > MAX_REQUEST_BYTES * 2:
        return HttpResponse("OCSP request too large\n", status=413, content_type="text/plain")
    text = encoded.strip("/").replace("-", "+").replace("_", "/")
    try:
        der = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return HttpResponseBadRequest("not base64\n", content_type="text/plain")
    return _ocsp_response(respond(der))
