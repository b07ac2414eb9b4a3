from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from devices.models import Device, Tenant


def format_validation_error(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def get_tenant(slug: str) -> Tenant:
    try:
        return Tenant.objects.get(slug=slug)
    except Tenant.DoesNotExist:
        raise CommandError(f"No tenant with slug {slug!r} (see `roost tenant list`).") from None


def get_device(tenant: Tenant, name: str) -> Device:
    try:
        return Device.objects.get(tenant=tenant, name=name)
    except Device.DoesNotExist:
        raise CommandError(f"No device {name!r} in tenant {tenant.slug!r}.") from None
