from __future__ import annotations

from typing import Any, TypeVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.shortcuts import render

from devices.audit import Actor, record_audit

from .ca import create_issuing_ca
from .errors import PkiError
from .models import (
    Certificate,
    CertificateAuthority,
    CertificateQuerySet,
    CertificateStatus,
    EnrollmentToken,
    RevocationReason,
)
from .revocation import revoke_certificate
from .x509util import normalize_fingerprint, normalize_serial

_M = TypeVar("_M", bound=Model)


class ReadOnlyAdmin(admin.ModelAdmin[_M]):
    """PKI rows change only through the service functions (which audit and announce them)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CertificateAuthority)
class CertificateAuthorityAdmin(ReadOnlyAdmin[CertificateAuthority]):
    list_display = ["id", "subject", "kind", "tenant", "active", "not_before", "not_after", "crl_number"]
    list_filter = ["kind", "active", "tenant"]
    search_fields = ["subject", "key_id", "serial"]
    exclude = ["crl_der"]
    actions = ["rotate_issuing_ca"]

    @admin.action(description="Rotate the issuing CA of the selected CAs' tenants", permissions=["rotate"])
    def rotate_issuing_ca(self, request: HttpRequest, queryset: QuerySet[CertificateAuthority]) -> None:
        tenants = {ca.tenant for ca in queryset.select_related("tenant") if ca.tenant is not None}
        for tenant in tenants:
            try:
                create_issuing_ca(tenant, actor=Actor.for_user(request.user))
            except PkiError as exc:
                self.message_user(request, f"{tenant.slug}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Rotated the issuing CA of {len(tenants)} tenant(s).", messages.SUCCESS)

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("pki.view_certificateauthority")


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, str(label)) for value, label in CertificateStatus.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> QuerySet[Certificate]:
        status = self.value()
        if status is not None and status in CertificateStatus.values:
            # The admin filters the model's own queryset, which is a CertificateQuerySet.
            return cast(CertificateQuerySet, queryset).with_status(status)
        return queryset


class RevokeForm(forms.Form):
    reason = forms.ChoiceField(choices=RevocationReason.choices, initial=RevocationReason.UNSPECIFIED)


@admin.register(Certificate)
class CertificateAdmin(ReadOnlyAdmin[Certificate]):
    list_display = ["serial", "device_name", "tenant", "shown_status", "not_after", "issued_by", "created"]
    list_filter = [StatusFilter, "tenant", "revocation_reason", "key_generated_by_server"]
    search_fields = ["serial", "fingerprint", "device_name", "public_key_sha256"]
    list_select_related = ["tenant"]
    actions = ["revoke_selected"]

    @admin.display(description="status")
    def shown_status(self, obj: Certificate) -> str:
        return obj.effective_status

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Certificate],
                           search_term: str) -> tuple[QuerySet[Certificate], bool]:
        # Serials and fingerprints are pasted as openssl prints them (colons, upper case).
        serial = normalize_serial(search_term)
        fp = normalize_fingerprint(search_term)
        if serial and len(serial) >= 8:
            hits = queryset.filter(serial=serial) | queryset.filter(fingerprint=fp)
            if hits.exists():
                return hits, False
        return super().get_search_results(request, queryset, search_term)

    @admin.action(description="Revoke selected certificates", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> Any:
        if "apply" not in request.POST:
            return render(request, "admin/pki/certificate/revoke.html", {
                **self.admin_site.each_context(request), "title": "Revoke certificates",
                "certificates": queryset, "form": RevokeForm(), "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            })
        form = RevokeForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Choose a revocation reason.", messages.ERROR)
            return None
        done = 0
        for cert in queryset.filter(status=CertificateStatus.ACTIVE):
            try:
                revoke_certificate(cert, form.cleaned_data["reason"], actor=Actor.for_user(request.user))
                done += 1
            except PkiError as exc:
                self.message_user(request, f"{cert.serial}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Revoked {done} certificate(s).", messages.SUCCESS)
        return None

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pki.change_certificate")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("pki.view_certificate") or request.user.has_perm("pki.change_certificate")


@admin.register(EnrollmentToken)
class EnrollmentTokenAdmin(admin.ModelAdmin[EnrollmentToken]):
    """Tokens are created with `roost enroll-token create` or the API (the secret is shown once there)."""

    list_display = ["prefix", "tenant", "label", "uses", "max_uses", "expires_at", "enabled", "created_by"]
    list_filter = ["tenant", "enabled"]
    search_fields = ["prefix", "label"]
    fields = ["tenant", "label", "prefix", "max_uses", "uses", "expires_at", "group", "attribute_template",
              "enabled", "created_by", "created"]
    readonly_fields = ["tenant", "prefix", "uses", "created_by", "created"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: EnrollmentToken, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            record_audit(Actor.for_user(request.user), "enrollment_token.update", obj, tenant=obj.tenant,
                         after={"prefix": obj.prefix, "max_uses": obj.max_uses, "enabled": obj.enabled,
                                "expires_at": obj.expires_at.isoformat()})
