from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from devices.models import Tenant
from pki.broker import ensure_broker_server_certificate
from pki.ca import create_issuing_ca, ensure_root_ca
from pki.errors import PkiError
from pki.models import CaKind, CertificateAuthority


class Command(BaseCommand):
    help = "Create the platform root CA and the broker's server certificate if missing (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            root, created = ensure_root_ca()
            # Tenants created before the PKI existed (or restored from a dump) get their issuing CA now.
            missing = Tenant.objects.exclude(
                pk__in=CertificateAuthority.objects.filter(kind=CaKind.ISSUING, active=True).values("tenant"))
            for tenant in missing:
                ca = create_issuing_ca(tenant)
                self.stdout.write(f"created issuing CA {ca.subject}")
            files = ensure_broker_server_certificate()
        except PkiError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(("created" if created else "found") + f" root CA {root.subject}")
        self.stdout.write(f"broker certificate {files.chain_path}, key {files.key_path}")
