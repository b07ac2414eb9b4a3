"""Filters of the tenant's certificate list (django-filter; shown as query parameters in the schema)."""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django import forms
from django.utils import timezone

from ..models import Certificate, CertificateQuerySet, CertificateStatus, EnrollmentToken

MAX_EXPIRING_DAYS = 36500


class IntegerFilter(django_filters.Filter):
    field_class = forms.IntegerField


class CertificateFilter(django_filters.FilterSet):
    device = django_filters.CharFilter(field_name="device_name", max_length=128,
                                       help_text="Only this device's certificates (exact name).")
    status = django_filters.ChoiceFilter(choices=CertificateStatus.choices, method="filter_status",
                                         help_text="The effective status: an active certificate past its "
                                         "not_after counts as expired.")
    expiring_within = IntegerFilter(method="filter_expiring_within", min_value=0, max_value=MAX_EXPIRING_DAYS,
                                    help_text="Active certificates whose not_after is within this many days "
                                    "(0: none, since expired ones are not active).")

    class Meta:
        model = Certificate
        fields = ["device", "status", "expiring_within"]

    def filter_status(self, queryset: CertificateQuerySet, name: str, value: str) -> CertificateQuerySet:
        return queryset.with_status(value)

    def filter_expiring_within(self, queryset: CertificateQuerySet, name: str,
                               value: int) -> CertificateQuerySet:
        now = timezone.now()
        return queryset.with_status(CertificateStatus.ACTIVE, at=now).filter(
            not_after__lte=now + timedelta(days=value))


class EnrollmentTokenFilter(django_filters.FilterSet):
    # Strict true/false: django-filter's BooleanFilter would silently ignore `enabled=maybe`.
    enabled = django_filters.TypedChoiceFilter(choices=[("true", "true"), ("false", "false")],
                                               coerce=lambda value: value == "true",
                                               help_text="Only enabled (true) or revoked (false) tokens.")

    class Meta:
        model = EnrollmentToken
        fields = ["enabled"]
