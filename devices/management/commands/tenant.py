from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from devices import services
from devices.models import Tenant

from ._helpers import format_validation_error, get_tenant


class Command(BaseCommand):
    help = "Create, list, enable, disable or delete tenants."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a tenant (with its issuing CA and default ACLs).")
        create.add_argument("slug")
        create.add_argument("--name", default="")
        sub.add_parser("list", help="List tenants.")
        for name in ("enable", "disable"):
            p = sub.add_parser(name, help=f"{name.capitalize()} a tenant and all its devices.")
            p.add_argument("slug")
        delete = sub.add_parser("delete", help="Delete a tenant with its devices, certificates, CAs, rules and "
                                "retained state; its CRL and OCSP stop answering. Needs --yes.")
        delete.add_argument("slug")
        delete.add_argument("--yes", action="store_true", help="really delete")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            if action == "create":
                tenant = services.create_tenant(options["slug"], options["name"])
                self.stdout.write(f"created tenant {tenant.slug}")
            elif action == "delete":
                tenant = get_tenant(options["slug"])
                devices = tenant.devices.count()
                if not options["yes"]:
                    raise CommandError(f"deleting tenant {tenant.slug} removes its {devices} device(s), their "
                                       "certificates and its CAs for good; repeat with --yes")
                services.delete_tenant(tenant)
                self.stdout.write(f"deleted tenant {tenant.slug} and its {devices} device(s)")
            elif action == "list":
                for tenant in Tenant.objects.all():
                    state = "enabled" if tenant.enabled else "disabled"
                    self.stdout.write(f"{tenant.slug}\t{state}\t{tenant.name}")
            else:
                tenant = get_tenant(options["slug"])
                services.set_tenant_enabled(tenant, action == "enable")
                self.stdout.write(f"{action}d tenant {tenant.slug}")
        except ValidationError as exc:
            raise CommandError(format_validation_error(exc)) from None
