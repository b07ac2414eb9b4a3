from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from devices.audit import Actor
from devices.models import DeviceGroup
from pki.enrollment import create_token, parse_duration
from pki.errors import PkiError

from ._common import get_tenant


class Command(BaseCommand):
    help = "Create enrollment tokens for fleet provisioning (the token is printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token.")
        create.add_argument("--tenant", default="default")
        create.add_argument("--uses", type=int, default=1, help="How many devices may enroll with it (default 1).")
        create.add_argument("--expires", default="24h", help="Lifetime such as 90m, 24h, 7d (default 24h).")
        create.add_argument("--group", help="Group the enrolled devices join.")
        create.add_argument("--label", default="", help="A note to recognise the token by.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        group = None
        if options["group"]:
            group = DeviceGroup.objects.filter(tenant=tenant, name=options["group"]).first()
            if group is None:
                raise CommandError(f"No group {options['group']!r} in tenant {tenant.slug!r}.")
        try:
            new = create_token(tenant, uses=options["uses"], expires_in=parse_duration(options["expires"]),
                               group=group, label=options["label"],
                               actor=Actor.system(f"cli:{os.environ.get('USER', 'unknown')}"))
        except PkiError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"token for tenant {tenant.slug}: {new.token.max_uses} use(s), expires "
                          f"{new.token.expires_at:%Y-%m-%d %H:%M} UTC (shown once, store it now)")
        self.stdout.write(new.secret)
