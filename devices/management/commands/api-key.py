from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from devices.apikeys import create_api_key, revoke_api_key
from devices.models import ApiKey, ApiKeyRole

from ._helpers import format_validation_error, get_tenant


class Command(BaseCommand):
    help = "Create, list or revoke a tenant's API keys (Authorization: Bearer <key>)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key; it is printed once, alone on the last line.")
        create.add_argument("--tenant", default="default")
        create.add_argument("--role", required=True, choices=ApiKeyRole.values)
        create.add_argument("--name", default="")
        create.add_argument("--expires", type=int, default=None, metavar="DAYS",
                            help="days until the key stops working (default: never)")
        listing = sub.add_parser("list", help="List a tenant's keys (never their secrets).")
        listing.add_argument("--tenant", default="default")
        revoke = sub.add_parser("revoke", help="Revoke a key by its prefix (rk_…); effective at once.")
        revoke.add_argument("prefix")
        revoke.add_argument("--tenant", default="default")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        try:
            if action == "create":
                new = create_api_key(tenant, role=options["role"], name=options["name"],
                                     expires_days=options["expires"])
                key = new.api_key
                expiry = key.expires_at.isoformat() if key.expires_at else "never"
                self.stdout.write(f"created API key {key.name!r} ({key.prefix}) in tenant {tenant.slug} "
                                  f"with role {key.role}, expires {expiry}; the key is shown only now:")
                self.stdout.write(new.key)
            elif action == "list":
                for key in ApiKey.objects.filter(tenant=tenant):
                    state = "revoked" if key.revoked_at else ("usable" if key.is_usable() else "expired")
                    last = key.last_used_at.isoformat() if key.last_used_at else "never used"
                    self.stdout.write(f"{key.prefix}\t{key.role}\t{state}\t{last}\t{key.name}")
            else:
                found = ApiKey.objects.filter(tenant=tenant, prefix=options["prefix"]).first()
                if found is None:
                    raise CommandError(f"No API key {options['prefix']!r} in tenant {tenant.slug!r}.")
                revoke_api_key(found)
                self.stdout.write(f"revoked API key {found.prefix}")
        except ValidationError as exc:
            raise CommandError(format_validation_error(exc)) from None
