"""REST endpoints: device enrollment by token, and tenant-scoped certificate management."""

from __future__ import annotations

import base64
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from devices.audit import Actor
from devices.models import DeviceGroup, Membership, Role, Tenant

from .csr import MAX_CSR_BYTES
from .enrollment import create_token, enroll, parse_duration
from .errors import PkiError, bad_request, forbidden, not_found, too_large
from .issuance import IssuedCertificate, find_device, issue_from_csr, issue_with_generated_key
from .models import Certificate, CertificateStatus
from .revocation import find_certificate, revoke_certificate

# The JSON envelope around a CSR: the CSR limit plus room for the token, name and quoting.
MAX_ENROLL_BODY = MAX_CSR_BYTES + 4096


def error_response(exc: PkiError) -> Response:
    return Response(exc.as_dict(), status=exc.status)


def _check_declared_length(request: Request, limit: int) -> None:
    """Refuse an oversized body from its Content-Length, before anything is read or parsed."""
    raw = request._request.META.get("CONTENT_LENGTH") or ""
    if raw and (not raw.isdigit() or int(raw) > limit):
        raise too_large(f"The request body is larger than {limit} bytes.", code="body_too_large")


def _string_field(data: Any, name: str, *, required: bool = True) -> str:
    if not isinstance(data, dict):
        raise bad_request("Send a JSON object.", code="invalid_body")
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise bad_request(f"The field {name!r} is required.", code="missing_field")
        return ""
    if not isinstance(value, str):
        raise bad_request(f"The field {name!r} must be a string.", code="invalid_field")
    return value


def issued_body(issued: IssuedCertificate) -> dict[str, Any]:
    record = issued.certificate
    body: dict[str, Any] = {
        **record.summary(),
        "certificate": issued.certificate_pem,
        "chain": issued.chain_pem,
        "ca": issued.root_pem,
    }
    if issued.private_key_pem:
        body["private_key"] = issued.private_key_pem
        body["pkcs12"] = base64.b64encode(issued.pkcs12).decode()
    return body


class EnrollRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    token = serializers.CharField()
    name = serializers.CharField()
    csr = serializers.CharField(help_text="PKCS#10 request in PEM.")


class EnrollView(APIView):
    """A device claims its identity: token + desired name + CSR → certificate and chain."""

    authentication_classes: list[Any] = []  # devices have no session; the token is the credential
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "enroll"  # ROOST_ENROLL_RATE per client address

    @extend_schema(request=EnrollRequestSerializer, responses={201: dict, 400: dict, 403: dict, 409: dict, 413: dict, 429: dict})
    def post(self, request: Request) -> Response:
        try:
            _check_declared_length(request, MAX_ENROLL_BODY)
            data = request.data
            token = _string_field(data, "token")
            name = _string_field(data, "name")
            csr = _string_field(data, "csr")
            source = request._request.META.get("REMOTE_ADDR", "")
            issued = enroll(token, name, csr, source=source)
        except PkiError as exc:
            return error_response(exc)
        return Response(issued_body(issued), status=status.HTTP_201_CREATED)


def tenant_for(request: Request, slug: str, role: str) -> Tenant:
    """The tenant if the user may act in it with `role`; a tenant they cannot see is not found."""
    tenant = Tenant.objects.filter(slug=slug).first()
    user = request.user
    if tenant is None:
        raise not_found(f"No tenant {slug!r}.", code="tenant_not_found")
    if user.is_superuser:
        return tenant
    membership = Membership.objects.filter(user=user, tenant=tenant).first()
    if membership is None:
        raise not_found(f"No tenant {slug!r}.", code="tenant_not_found")
    if not membership.has_role(role):
        raise forbidden(f"This needs the {role} role in tenant {slug!r}.")
    return tenant


class TenantCertificatesView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: dict})
    def get(self, request: Request, tenant: str) -> Response:
        try:
            scope = tenant_for(request, tenant, Role.VIEWER)
        except PkiError as exc:
            return error_response(exc)
        certs: QuerySet[Certificate] = Certificate.objects.for_tenant(scope).select_related("tenant")
        if request.query_params.get("device"):
            certs = certs.filter(device_name=request.query_params["device"])
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in CertificateStatus.values:
                return error_response(bad_request(f"status must be one of {', '.join(CertificateStatus.values)}."))
            certs = certs.with_status(wanted)
        return Response({"results": [c.summary() for c in certs[:1000]]})


class RevokeRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    reason = serializers.CharField(required=False, default="unspecified")


class RevokeCertificateView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=RevokeRequestSerializer, responses={200: dict})
    def post(self, request: Request, tenant: str, serial: str) -> Response:
        try:
            scope = tenant_for(request, tenant, Role.ADMIN)
            reason = _string_field(request.data, "reason", required=False) or "unspecified"
            cert = revoke_certificate(find_certificate(serial, tenant=scope), reason,
                                      actor=Actor.for_user(request.user))
        except PkiError as exc:
            return error_response(exc)
        return Response(cert.summary())


class IssueRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    csr = serializers.CharField(required=False, help_text="PKCS#10 in PEM; without it a key is generated here.")
    days = serializers.IntegerField(required=False, min_value=1)
    passphrase = serializers.CharField(required=False, help_text="Protects the PKCS#12 of a generated key.")


class DeviceCertificatesView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: dict})
    def get(self, request: Request, tenant: str, device: str) -> Response:
        try:
            found = find_device(tenant_for(request, tenant, Role.VIEWER), device)
        except PkiError as exc:
            return error_response(exc)
        return Response({"results": [c.summary() for c in found.certificates.select_related("tenant")]})

    @extend_schema(request=IssueRequestSerializer, responses={201: dict})
    def post(self, request: Request, tenant: str, device: str) -> Response:
        try:
            _check_declared_length(request, MAX_ENROLL_BODY)
            found = find_device(tenant_for(request, tenant, Role.ADMIN), device)
            data = request.data
            csr = _string_field(data, "csr", required=False)
            days = data.get("days") if isinstance(data, dict) else None
            if days is not None and (isinstance(days, bool) or not isinstance(days, int)):
                raise bad_request("days must be an integer.", code="invalid_days")
            actor = Actor.for_user(request.user)
            if csr:
                issued = issue_from_csr(found, csr, actor=actor, days=days)
            else:
                passphrase = _string_field(data, "passphrase", required=False)
                issued = issue_with_generated_key(found, actor=actor, days=days, passphrase=passphrase)
        except PkiError as exc:
            return error_response(exc)
        body = issued_body(issued)
        if issued.private_key_pem and not (isinstance(request.data, dict) and request.data.get("passphrase")):
            body["pkcs12_passphrase"] = issued.pkcs12_passphrase
        return Response(body, status=status.HTTP_201_CREATED)


class TokenRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    uses = serializers.IntegerField(required=False, min_value=1, default=1)
    expires = serializers.CharField(required=False, default="24h", help_text="e.g. 90m, 24h, 7d")
    group = serializers.CharField(required=False, allow_blank=True)
    attributes = serializers.DictField(required=False)
    label = serializers.CharField(required=False, allow_blank=True, max_length=200)


class EnrollmentTokensView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=TokenRequestSerializer, responses={201: dict})
    def post(self, request: Request, tenant: str) -> Response:
        try:
            scope = tenant_for(request, tenant, Role.ADMIN)
            form = TokenRequestSerializer(data=request.data)
            if not form.is_valid():
                raise bad_request(str(form.errors), code="invalid_body")
            values = form.validated_data
            group = None
            if values.get("group"):
                group = DeviceGroup.objects.filter(tenant=scope, name=values["group"]).first()
                if group is None:
                    raise not_found(f"No group {values['group']!r} in tenant {scope.slug!r}.", code="group_not_found")
            new = create_token(scope, uses=values["uses"], expires_in=parse_duration(values["expires"]),
                               group=group, attributes=values.get("attributes"), label=values.get("label", ""),
                               actor=Actor.for_user(request.user))
        except PkiError as exc:
            return error_response(exc)
        return Response({"token": new.secret, "prefix": new.token.prefix, "max_uses": new.token.max_uses,
                         "expires_at": new.token.expires_at.isoformat(),
                         "group": group.name if group else None}, status=status.HTTP_201_CREATED)
