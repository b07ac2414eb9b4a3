"""Certificate authorities, issued certificates and enrollment tokens."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from devices.models import Device, DeviceGroup, Tenant


class CaKind(models.TextChoices):
    ROOT = "root", "Platform root CA"
    ISSUING = "issuing", "Tenant issuing CA"


class CertificateAuthority(models.Model):
    """A CA whose key Roost holds. Only the root and per-tenant issuing CAs exist."""

    kind = models.CharField(max_length=16, choices=CaKind.choices)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="certificate_authorities")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    # The issuing CA that signs new certificates for its tenant; rotated ones keep answering
    # CRL and OCSP requests for what they signed, but sign nothing new.
    active = models.BooleanField(default=True)
    subject = models.CharField(max_length=255)
    serial = models.CharField(max_length=40)
    certificate_pem = models.TextField()
    key_file = models.CharField(max_length=128, help_text="Encrypted key file under ROOST_DATA_DIR/pki/ca/.")
    key_id = models.CharField(max_length=64, unique=True, help_text="Subject key identifier (hex).")
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    crl_number = models.PositiveBigIntegerField(default=0)
    crl_der = models.BinaryField(null=True, blank=True, editable=False)
    crl_next_update = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "tenant__slug", "-created"]
        verbose_name = "certificate authority"
        verbose_name_plural = "certificate authorities"
        constraints = [
            models.UniqueConstraint(fields=["kind"], condition=models.Q(kind="root", active=True),
                                    name="pki_one_active_root"),
            models.UniqueConstraint(fields=["tenant"], condition=models.Q(kind="issuing", active=True),
                                    name="pki_one_active_issuing_ca_per_tenant"),
        ]

    def __str__(self) -> str:
        return self.subject

    @property
    def is_expired(self) -> bool:
        return self.not_after <= timezone.now()


class CertificateStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class RevocationReason(models.TextChoices):
    """RFC 5280 CRLReason names (certificateHold and removeFromCRL are not offered: revocation is final)."""

    UNSPECIFIED = "unspecified", "Unspecified"
    KEY_COMPROMISE = "keyCompromise", "Key compromise"
    CA_COMPROMISE = "cACompromise", "CA compromise"
    AFFILIATION_CHANGED = "affiliationChanged", "Affiliation changed"
    SUPERSEDED = "superseded", "Superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation", "Cessation of operation"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn", "Privilege withdrawn"
    AA_COMPROMISE = "aACompromise", "AA compromise"


class CertificateQuerySet(models.QuerySet["Certificate"]):
    def for_tenant(self, tenant: Tenant) -> CertificateQuerySet:
        return self.filter(tenant=tenant)

    def with_status(self, status: str, at: datetime | None = None) -> CertificateQuerySet:
        """Filter on the effective status: an active certificate past notAfter counts as expired."""
        at = at or timezone.now()
        if status == CertificateStatus.ACTIVE:
            return self.filter(status=CertificateStatus.ACTIVE, not_after__gt=at)
        if status == CertificateStatus.EXPIRED:
            return self.filter(models.Q(status=CertificateStatus.EXPIRED)
                               | models.Q(status=CertificateStatus.ACTIVE, not_after__lte=at))
        return self.filter(status=status)

    def currently_valid(self, at: datetime | None = None) -> CertificateQuerySet:
        at = at or timezone.now()
        return self.filter(status=CertificateStatus.ACTIVE, not_before__lte=at, not_after__gt=at)


class Certificate(models.Model):
    """A device certificate issued by a tenant's issuing CA. The private key is never stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="certificates")
    # Kept when the device is deleted so that CRL and OCSP still answer for the serial.
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="certificates")
    device_name = models.CharField(max_length=128)
    # CAs are deleted only with their tenant, which takes its certificates along.
    issuer = models.ForeignKey(CertificateAuthority, on_delete=models.CASCADE, related_name="certificates")
    serial = models.CharField(max_length=40, unique=True, help_text="Lower-case hex, no leading zeros.")
    fingerprint = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the DER, lower-case hex.")
    public_key_sha256 = models.CharField(max_length=64, db_index=True)
    subject = models.CharField(max_length=255)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=16, choices=CertificateStatus.choices, default=CertificateStatus.ACTIVE,
                              db_index=True)
    revocation_reason = models.CharField(max_length=32, choices=RevocationReason.choices, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    issued_by = models.CharField(max_length=200, help_text="Label of the actor that requested the certificate.")
    key_generated_by_server = models.BooleanField(default=False)
    certificate_pem = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    objects = CertificateQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["tenant", "device_name"])]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.device_name} {self.serial}"

    @property
    def effective_status(self) -> str:
        """The stored status, with expiry applied even before the housekeeping task has run."""
        if self.status == CertificateStatus.ACTIVE and self.not_after <= timezone.now():
            return CertificateStatus.EXPIRED
        return self.status

    def summary(self) -> dict[str, str | None]:
        return {
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "device": self.device_name,
            "tenant": self.tenant.slug,
            "subject": self.subject,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "status": self.effective_status,
            "revocation_reason": self.revocation_reason or None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "issuer_ca": str(self.issuer_id),
        }


class CertifiedKey(models.Model):
    """The one device a public key may ever be certified for.

    The unique key hash is what makes "one key, one device" hold when two issuances of the
    same key race: the second insert fails in the database, not in a check that both passed.
    """

    public_key_sha256 = models.CharField(max_length=64, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="certified_keys")
    device_name = models.CharField(max_length=128)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.public_key_sha256[:16]}… → {self.tenant.slug}/{self.device_name}"


class CompromisedKey(models.Model):
    """A public key once revoked for keyCompromise: never certified again, for any device of
    any tenant. No foreign keys, so that deleting the device or its tenant cannot forget it."""

    public_key_sha256 = models.CharField(max_length=64, unique=True)
    serial = models.CharField(max_length=64, help_text="The certificate whose revocation reported it.")
    tenant_slug = models.CharField(max_length=64)
    device_name = models.CharField(max_length=128)
    reported_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.public_key_sha256[:16]}… (compromised, {self.tenant_slug}/{self.device_name})"


class EnrollmentToken(models.Model):
    """A claim token for fleet provisioning; only the SHA-256 of the secret is stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="enrollment_tokens")
    label = models.CharField(max_length=200, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False, help_text="The first characters, to recognise it.")
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField()
    group = models.ForeignKey(DeviceGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    attribute_template = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.tenant.slug} {self.prefix}… ({self.uses}/{self.max_uses})"

    def clean(self) -> None:
        if self.group is not None and self.group.tenant_id != self.tenant_id:
            raise ValidationError({"group": "The group belongs to another tenant."})

    @property
    def is_usable(self) -> bool:
        return self.enabled and self.uses < self.max_uses and self.expires_at > timezone.now()
