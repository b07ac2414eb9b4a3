from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from devices import services
from devices.models import Device, DeviceGroup

from ._helpers import format_validation_error, get_device, get_tenant


class Command(BaseCommand):
    help = "Create, list, enable or disable devices of a tenant."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Register a device.")
        create.add_argument("name", help="The device's MQTT client id.")
        create.add_argument("--display-name", default="")
        create.add_argument("--group", help="Name of an existing group of the tenant.")
        create.add_argument("--tag", action="append", default=[], dest="tags")
        create.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE", dest="attrs")
        create.add_argument("--disabled", action="store_true")
        listing = sub.add_parser("list", help="List the tenant's devices.")
        listing.add_argument("--json", action="store_true", help="Print JSON lines.")
        for name in ("enable", "disable"):
            p = sub.add_parser(name, help=f"{name.capitalize()} a device.")
            p.add_argument("name")
        for p in sub.choices.values():
            p.add_argument("--tenant", default="default", help="Tenant slug (default: default).")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        try:
            if action == "create":
                self._create(tenant, options)
            elif action == "list":
                self._list(tenant, options["json"])
            else:
                device = get_device(tenant, options["name"])
                services.set_device_enabled(device, action == "enable")
                self.stdout.write(f"{action}d device {device.name}")
        except ValidationError as exc:
            raise CommandError(format_validation_error(exc)) from None

    def _create(self, tenant: Any, options: dict[str, Any]) -> None:
        group = None
        if options["group"]:
            try:
                group = DeviceGroup.objects.get(tenant=tenant, name=options["group"])
            except DeviceGroup.DoesNotExist:
                raise CommandError(f"No group {options['group']!r} in tenant {tenant.slug!r}.") from None
        attributes: dict[str, str] = {}
        for item in options["attrs"]:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CommandError(f"--attr {item!r} must look like KEY=VALUE.")
            attributes[key] = value
        device = services.create_device(
            tenant, options["name"], display_name=options["display_name"], group=group,
            tags=options["tags"], attributes=attributes, enabled=not options["disabled"],
        )
        self.stdout.write(f"created device {device.name} in tenant {tenant.slug}")

    def _list(self, tenant: Any, as_json: bool) -> None:
        for device in Device.objects.for_tenant(tenant).select_related("group"):
            if as_json:
                row = device.snapshot() | {"online": device.online,
                                           "last_seen": device.last_seen.isoformat() if device.last_seen else None}
                self.stdout.write(json.dumps(row))
            else:
                state = "enabled" if device.enabled else "disabled"
                online = "online" if device.online else "offline"
                self.stdout.write(f"{device.name}\t{state}\t{online}\t{device.group.name if device.group else '-'}")
