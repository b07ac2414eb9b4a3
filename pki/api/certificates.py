"""Certificates of a tenant: issue for a device (JSON, .p12 or a zip of PEM files), list with
filters, look up by serial as openssl prints it, revoke with an RFC 5280 reason."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.functional import cached_property
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from devices.models import Device, Role
from roost.api.errors import ERROR_SCHEMA, ApiError
from roost.api.views import TenantScopedMixin

from ..bundles import zip_bundle
from ..csr import MAX_CSR_BYTES
from ..issuance import IssuedCertificate, find_device, issue_from_csr, issue_with_generated_key
from ..models import Certificate
from ..revocation import find_certificate, revoke_certificate
from .filters import MAX_EXPIRING_DAYS, CertificateFilter
from .renderers import (
    PKCS12,
    ZIP,
    JsonErrorsMixin,
    PemZipRenderer,
    Pkcs12Renderer,
    StrictFormatNegotiation,
)
from .serializers import (
    CertificateSerializer,
    IssuedCertificateSerializer,
    IssueRequestSerializer,
    RevokeRequestSerializer,
    issued_body,
)

# A CSR plus the JSON around it; larger bodies are refused before they are read.
MAX_ISSUE_BODY = MAX_CSR_BYTES + 4096
PASSPHRASE_HEADER = "X-PKCS12-Passphrase"  # noqa: S105 - a header name, not a secret

DEVICE_PARAMETER = OpenApiParameter("device", str, OpenApiParameter.PATH, description="The device's name.")
SERIAL_PARAMETER = OpenApiParameter(
    "serial", str, OpenApiParameter.PATH,
    description="The certificate serial in hex: as the API shows it (`5c1f…`) or as `openssl x509 -serial` "
                "prints it (`serial=05C1F…`; case, colons, leading zeros and the `serial=` prefix are ignored).")

# A real P-256 CSR (its key was thrown away), so that the documented example is accepted as is.
EXAMPLE_CSR = """\
-----BEGIN CERTIFICATE REQUEST-----
MIHOMHUCAQAwEzERMA8GA1UEAwwIc2Vuc29yLTEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATSjmdKLjLeh7fuKBGsn5j8luuPF3uzreLnEdeuHWGo1Yotj7kRZO2t
V1/LinN0z90zyo06uMo0HqXA9pD3ft6KoAAwCgYIKoZIzj0EAwIDSQAwRgIhAKyA
aIlJUE+KE5oLUd/tdLNkuZbtHdJfyuEF3DvVTmEOAiEA9muxlDNXSEVr91THH5dk
8R2E5fTqmAWyOCkk1eXaSgA=
-----END CERTIFICATE REQUEST-----
"""

_ISSUE_DESCRIPTION = f"""\
Issue a certificate for the device, from a CSR (`csr`: only its public key is used; the CA sets the
subject, SAN and key usages) or with a key generated here (no `csr`).

The answer depends on `Accept`:

* `application/json` (default): the certificate, its chain and the root; for a generated key also
  `private_key` (PKCS#8 PEM), `pkcs12` (base64) and, when no `passphrase` was sent, `pkcs12_passphrase`.
* `{PKCS12}`: the PKCS#12 file itself (key, leaf and issuing CA). Only for a generated key: with
  a CSR there is no key to put in it and the answer is `406`. A passphrase generated for it is in the
  `{PASSPHRASE_HEADER}` response header.
* `{ZIP}`: a zip of PEM files as `roost cert issue --out` writes them: `ca.pem` (the root),
  `device.pem` (leaf then issuing CA), `chain.pem` (the issuing CA) and, for a generated key,
  `device.key`.

A generated key is downloadable once: it exists only in this answer and is never stored, so
every POST issues a new certificate with a new key. Revoke the old one when you replace it.
"""


@extend_schema_view(
    list=extend_schema(summary="List a device's certificates", parameters=[DEVICE_PARAMETER],
                       responses={200: CertificateSerializer(many=True)}),
)
class DeviceCertificateViewSet(TenantScopedMixin, JsonErrorsMixin, mixins.ListModelMixin,
                               viewsets.GenericViewSet[Certificate]):
    """`devices/{device}/certificates/`: viewer lists, operator issues."""

    serializer_class = CertificateSerializer
    queryset = Certificate.objects.none()  # the model, for the schema; requests use get_queryset
    ordering = ("-created", "-id")
    filter_backends: list[Any] = []
    content_negotiation_class = StrictFormatNegotiation
    max_body_bytes = MAX_ISSUE_BODY

    @cached_property
    def device(self) -> Device:
        return find_device(self.tenant, self.kwargs["device"])

    def get_queryset(self) -> QuerySet[Certificate]:
        return self.device.certificates.select_related("tenant")

    def get_renderers(self) -> list[BaseRenderer]:
        if getattr(self, "action", None) == "create":
            # Exactly the three documented answers (no browsable-API page for a key download).
            return [JSONRenderer(), Pkcs12Renderer(), PemZipRenderer()]
        return super().get_renderers()

    @extend_schema(
        summary="Issue a certificate for a device",
        description=_ISSUE_DESCRIPTION,
        parameters=[
            DEVICE_PARAMETER,
            OpenApiParameter(PASSPHRASE_HEADER, str, OpenApiParameter.HEADER, response=[201], required=False,
                             description=f"With `Accept: {PKCS12}` and no `passphrase` sent: the passphrase "
                                         "generated for the PKCS#12."),
        ],
        request=IssueRequestSerializer,
        responses={
            (201, "application/json"): OpenApiResponse(IssuedCertificateSerializer,
                                                       description="Issued; the key material is shown once."),
            (201, PKCS12): OpenApiResponse(OpenApiTypes.BINARY),
            (201, ZIP): OpenApiResponse(OpenApiTypes.BINARY),
            (406, "application/json"): OpenApiResponse(
                ERROR_SCHEMA, description="An Accept header this endpoint cannot answer, or a PKCS#12 "
                                          "asked for a CSR (there is no key to put in it)."),
            (409, "application/json"): OpenApiResponse(
                ERROR_SCHEMA, description="The CSR's key is already certified for another device."),
        },
        examples=[
            OpenApiExample("Generated key", value={"days": 365}, request_only=True),
            OpenApiExample("From a CSR", value={"csr": EXAMPLE_CSR}, request_only=True),
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = IssueRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = form.validated_data
        device = self.device
        renderer = request.accepted_renderer
        days = values.get("days")
        if values.get("csr"):
            if isinstance(renderer, Pkcs12Renderer):
                # Refused before anything is issued: a certificate nobody receives is not left behind.
                raise ApiError(f"A PKCS#12 holds a private key, and with a CSR the key stays with you; "
                               f"ask for application/json or {ZIP}.", code="not_acceptable", status_code=406)
            issued = issue_from_csr(device, values["csr"], actor=self.actor, days=days)
        else:
            issued = issue_with_generated_key(device, actor=self.actor, days=days,
                                              passphrase=values.get("passphrase") or "")
        return self._issued_response(issued, renderer, passphrase_sent=bool(values.get("passphrase")))

    def _issued_response(self, issued: IssuedCertificate, renderer: BaseRenderer, *,
                         passphrase_sent: bool) -> Response:
        cert = issued.certificate
        headers = {
            # Key material: no cache, proxy or browser may keep a copy.
            "Cache-Control": "no-store",
            "Location": reverse("v1:certificate-detail", kwargs={"tenant": cert.tenant.slug, "serial": cert.serial},
                                request=self.request),
        }
        filename = cert.device_name.replace(":", "_")
        if isinstance(renderer, Pkcs12Renderer):
            headers["Content-Disposition"] = f'attachment; filename="{filename}.p12"'
            if not passphrase_sent:
                headers[PASSPHRASE_HEADER] = issued.pkcs12_passphrase
            return Response(issued.pkcs12, status=status.HTTP_201_CREATED, headers=headers)
        if isinstance(renderer, PemZipRenderer):
            headers["Content-Disposition"] = f'attachment; filename="{filename}.zip"'
            return Response(zip_bundle(issued), status=status.HTTP_201_CREATED, headers=headers)
        body = issued_body(issued, show_passphrase=not passphrase_sent)
        return Response(body, status=status.HTTP_201_CREATED, headers=headers)


@extend_schema_view(
    list=extend_schema(
        summary="List the tenant's certificates",
        parameters=[OpenApiParameter("expiring_within", {"type": "integer", "minimum": 0,
                                                         "maximum": MAX_EXPIRING_DAYS},
                                     description="Active certificates whose not_after is within this many days.")],
        responses={200: CertificateSerializer(many=True)}),
    retrieve=extend_schema(summary="Show a certificate by serial", parameters=[SERIAL_PARAMETER],
                           responses={200: CertificateSerializer}),
)
class CertificateViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                         viewsets.GenericViewSet[Certificate]):
    """`certificates/`: viewer reads, operator revokes."""

    serializer_class = CertificateSerializer
    queryset = Certificate.objects.none()  # the model, for the schema; requests use get_queryset
    lookup_field = "serial"
    # Anything up to the next slash: malformed serials get the shared 400, not the router's 404 page.
    lookup_value_regex = r"[^/]+"
    filterset_class = CertificateFilter
    # Keyset pages: a bulk import gives thousands of certificates the same not_after second.
    ordering = ("-created", "-id")
    ordering_fields = ("created", "not_after")
    action_roles = {"revoke": Role.OPERATOR}
    max_body_bytes = 4096

    def get_queryset(self) -> QuerySet[Certificate]:
        return Certificate.objects.filter(tenant=self.tenant).select_related("tenant")

    def get_object(self) -> Certificate:
        return find_certificate(self.kwargs["serial"], tenant=self.tenant)

    @extend_schema(
        summary="Revoke a certificate",
        description="Revocation is final: the certificate enters its CA's CRL and OCSP answers `revoked` at "
                    "once, and a device connected with it is disconnected within a second (MQTT 5: "
                    "DISCONNECT 0x98) and refused when it comes back.",
        parameters=[SERIAL_PARAMETER],
        request=RevokeRequestSerializer,
        responses={200: CertificateSerializer,
                   409: OpenApiResponse(ERROR_SCHEMA, description="The certificate is already revoked.")},
        examples=[OpenApiExample("Key compromise", value={"reason": "keyCompromise"}, request_only=True)],
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        cert = self.get_object()
        form = RevokeRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        cert = revoke_certificate(cert, form.validated_data["reason"], actor=self.actor)
        return Response(CertificateSerializer(cert).data)
