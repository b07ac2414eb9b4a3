"""Request and response shapes of the PKI API. Requests are validated here; the rules
(key policy, validity, one key per device, token use) stay in the services."""

from __future__ import annotations

import base64
from typing import Any

from rest_framework import serializers

from devices.models import DeviceGroup, Tenant
from roost.api.errors import ApiError

from ..csr import KEY_POLICY, load_csr
from ..enrollment import MAX_TOKEN_LIFETIME, parse_duration
from ..errors import PkiError
from ..issuance import MAX_DAYS, IssuedCertificate
from ..models import Certificate, CertificateStatus, EnrollmentToken, RevocationReason

REASONS = ", ".join(RevocationReason.values)


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would turn 5 or 1.5 into "5" and "1.5"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def field_error(exc: PkiError, field: str) -> Exception:
    """A service's refusal of one input, raised from `validate_<field>`: a 400 on that field, or
    the service's own status (413 for an oversized CSR) with the field named."""
    if exc.status == 400:
        return serializers.ValidationError(exc.message, code=exc.code)
    return ApiError(exc.message, code=exc.code, status_code=exc.status, field=field)


# Certificates ---------------------------------------------------------------------------------


class CertificateSerializer(serializers.ModelSerializer[Certificate]):
    serial = serializers.CharField(read_only=True, help_text="Lower-case hex without leading zeros, the one "
                                   "serial format of the API, the CLI and the admin. Lookups also accept "
                                   "the serial as `openssl x509 -serial` prints it.")
    device = serializers.CharField(source="device_name", read_only=True)
    tenant: serializers.SlugRelatedField[Tenant] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    status = serializers.ChoiceField(source="effective_status", choices=CertificateStatus.choices, read_only=True,
                                     help_text="The effective status: an active certificate past not_after "
                                     "is expired.")
    revocation_reason = serializers.ChoiceField(choices=RevocationReason.choices, read_only=True, allow_null=True)
    issuer_ca = serializers.IntegerField(source="issuer_id", read_only=True,
                                         help_text="The issuing CA; its certificate is at /pki/ca/{id}.pem.")

    class Meta:
        model = Certificate
        fields = ["serial", "fingerprint", "device", "tenant", "subject", "not_before", "not_after", "status",
                  "revocation_reason", "revoked_at", "issuer_ca", "issued_by", "key_generated_by_server",
                  "created"]
        read_only_fields = fields

    def to_representation(self, instance: Certificate) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        data["revocation_reason"] = instance.revocation_reason or None
        return data


class IssueRequestSerializer(serializers.Serializer[Any]):
    csr = StrictCharField(required=False, allow_null=True, trim_whitespace=False,
                          help_text=f"PKCS#10 request in PEM; only its key is used ({KEY_POLICY}). "
                          "Without it an ECDSA P-256 key is generated for this response and never stored.")
    days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_DAYS,
                                    help_text="Validity in days (default ROOST_PKI_DEVICE_CERT_DAYS).")
    passphrase = StrictCharField(required=False, allow_null=True, min_length=8, max_length=128,
                                 trim_whitespace=False,
                                 help_text="Protects the PKCS#12 of a generated key; without it one is "
                                 "generated and returned (pkcs12_passphrase, or the X-PKCS12-Passphrase header).")

    def validate_csr(self, value: str | None) -> str | None:
        # Parsed here as well as in the service, so that a bad CSR is reported on the field `csr`.
        if value is not None:
            try:
                load_csr(value)
            except PkiError as exc:
                raise field_error(exc, "csr") from None
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("csr") and attrs.get("passphrase"):
            raise serializers.ValidationError(
                {"passphrase": "A passphrase protects the PKCS#12 of a key generated here; "
                               "with a CSR the key stays with you."}, code="passphrase_without_key")
        return attrs


class IssuedCertificateSerializer(CertificateSerializer):
    """A new certificate with what a device installs. Key material exists only in this answer."""

    certificate = serializers.CharField(read_only=True, help_text="The leaf certificate in PEM.")
    chain = serializers.CharField(read_only=True, help_text="The issuing CA in PEM (present it after the leaf).")
    ca = serializers.CharField(read_only=True, help_text="The platform root CA in PEM (the trust anchor).")
    private_key = serializers.CharField(required=False, help_text="PKCS#8 PEM; only for a generated key.")
    pkcs12 = serializers.CharField(required=False, help_text="Base64 PKCS#12 of key, leaf and issuing CA; "
                                   "only for a generated key.")
    pkcs12_passphrase = serializers.CharField(required=False, help_text="Only when no passphrase was sent.")

    class Meta(CertificateSerializer.Meta):
        fields = [*CertificateSerializer.Meta.fields, "certificate", "chain", "ca", "private_key", "pkcs12",
                  "pkcs12_passphrase"]
        read_only_fields = CertificateSerializer.Meta.fields


def issued_body(issued: IssuedCertificate, *, show_passphrase: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        **CertificateSerializer(issued.certificate).data,
        "certificate": issued.certificate_pem,
        "chain": issued.chain_pem,
        "ca": issued.root_pem,
    }
    if issued.private_key_pem:
        body["private_key"] = issued.private_key_pem
        body["pkcs12"] = base64.b64encode(issued.pkcs12).decode()
        if show_passphrase:
            body["pkcs12_passphrase"] = issued.pkcs12_passphrase
    return body


class RevokeRequestSerializer(serializers.Serializer[Any]):
    reason = serializers.ChoiceField(
        choices=RevocationReason.choices, default=RevocationReason.UNSPECIFIED,
        error_messages={"invalid_choice": f'"{{input}}" is not an RFC 5280 revocation reason; use one of {REASONS}.'},
        help_text="RFC 5280 CRLReason name.")


# Enrollment -----------------------------------------------------------------------------------


class EnrollRequestSerializer(serializers.Serializer[Any]):
    token = StrictCharField(max_length=200, help_text="The enrollment token (roost_enr_…).")
    name = StrictCharField(max_length=200, help_text="The device name to register.")
    csr = StrictCharField(trim_whitespace=False, help_text=f"PKCS#10 request in PEM ({KEY_POLICY}).")


class EnrollmentTokenSerializer(serializers.ModelSerializer[EnrollmentToken]):
    group: serializers.SlugRelatedField[DeviceGroup] = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True)
    attributes = serializers.DictField(source="attribute_template", read_only=True,
                                       help_text="Attributes every enrolled device starts with.")
    usable = serializers.BooleanField(source="is_usable", read_only=True,
                                      help_text="Enabled, not used up and not expired.")

    class Meta:
        model = EnrollmentToken
        fields = ["prefix", "label", "uses", "max_uses", "expires_at", "group", "attributes", "enabled",
                  "usable", "created_by", "created"]
        read_only_fields = fields


class EnrollmentTokenCreatedSerializer(EnrollmentTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret, shown this once; only its SHA-256 is kept.")

    class Meta(EnrollmentTokenSerializer.Meta):
        fields = [*EnrollmentTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class EnrollmentTokenCreateSerializer(serializers.Serializer[Any]):
    uses = serializers.IntegerField(required=False, default=1, min_value=1, max_value=1_000_000,
                                    help_text="How many devices may enroll with it.")
    expires = StrictCharField(required=False, default="24h", max_length=32,
                              help_text="Lifetime: a number with s, m, h, d or w (90m, 24h, 7d, 1d12h); "
                              f"at most {MAX_TOKEN_LIFETIME.days} days.")
    group = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=100,
                            help_text="Name of the group the enrolled devices join.")
    attributes = serializers.DictField(required=False, default=dict,
                                       help_text="Attributes every enrolled device starts with.")
    # A declared field, taken out of the class by the metaclass: not Field.label as the stubs believe.
    label = StrictCharField(required=False, allow_blank=True, default="", max_length=200,  # type: ignore[assignment]
                            help_text="A note to recognise the token by.")

    def validate_expires(self, value: str) -> Any:
        try:
            return parse_duration(value)
        except PkiError as exc:
            raise field_error(exc, "expires") from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        tenant: Tenant = self.context["tenant"]
        name = attrs.get("group") or ""
        attrs["group"] = None
        if name:
            attrs["group"] = DeviceGroup.objects.filter(tenant=tenant, name=name).first()
            if attrs["group"] is None:
                raise serializers.ValidationError({"group": f"No group {name!r} in tenant {tenant.slug!r}."},
                                                  code="group_not_found")
        return attrs
