from __future__ import annotations

from django.core.management.base import CommandError

from devices.models import Tenant


def get_tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"No tenant with slug {slug!r} (see `roost tenant list`).")
    return tenant
