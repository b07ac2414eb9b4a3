from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from devices.audit import Actor
from devices.models import Device
from devices.services import create_device
from pki.bundles import KEY_FILE, device_files
from pki.errors import PkiError
from pki.issuance import find_device, issue_from_csr, issue_with_generated_key
from pki.keystore import write_private_file
from pki.models import Certificate
from pki.revocation import find_certificate, parse_reason, revoke_certificate

from ._common import get_tenant


class Command(BaseCommand):
    help = "Issue, revoke and list device certificates."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        issue = sub.add_parser("issue", help="Issue a certificate for a device (server-side key unless --csr).")
        issue.add_argument("device")
        issue.add_argument("--tenant", default="default")
        issue.add_argument("--csr", help="PKCS#10 request (PEM or DER) to sign instead of generating a key.")
        issue.add_argument("--out", required=True, help="Directory for ca.pem, device.pem and device.key.")
        issue.add_argument("--days", type=int, help="Validity in days (default ROOST_PKI_DEVICE_CERT_DAYS).")
        issue.add_argument("--no-register", action="store_true",
                           help="Fail if the device is not registered yet (default: register it).")
        revoke = sub.add_parser("revoke", help="Revoke a certificate by serial (hex, as openssl prints it).")
        revoke.add_argument("serial")
        revoke.add_argument("--reason", default="unspecified",
                            help="RFC 5280 reason: unspecified, keyCompromise, superseded, cessationOfOperation, ...")
        listing = sub.add_parser("list", help="List certificates.")
        listing.add_argument("--tenant")
        listing.add_argument("--device")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except PkiError as exc:
            raise CommandError(exc.message) from None

    def _issue(self, options: dict[str, Any]) -> None:
        tenant = get_tenant(options["tenant"])
        actor = Actor.system(f"cli:{os.environ.get('USER', 'unknown')}")
        with transaction.atomic():
            self._issue_in(tenant, actor, options)

    def _issue_in(self, tenant: Any, actor: Actor, options: dict[str, Any]) -> None:
        if options["no_register"] or Device.objects.filter(tenant=tenant, name=options["device"]).exists():
            device = find_device(tenant, options["device"])
        else:
            try:
                device = create_device(tenant, options["device"], actor=actor)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
            self.stdout.write(f"registered device {device.name} in tenant {tenant.slug}")
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        if options["csr"]:
            try:
                csr = Path(options["csr"]).read_bytes()
            except OSError as exc:
                raise CommandError(f"Cannot read {options['csr']}: {exc.strerror}") from None
            issued = issue_from_csr(device, csr, actor=actor, days=options["days"])
        else:
            issued = issue_with_generated_key(device, actor=actor, days=options["days"])
        # The same files as the API's zip bundle (pki/bundles.py).
        files = device_files(issued)
        for name, data in files.items():
            if name == KEY_FILE:
                write_private_file(out / name, data)
            else:
                (out / name).write_bytes(data)
        cert = issued.certificate
        self.stdout.write(f"issued {cert.serial} for {tenant.slug}/{device.name}, valid until "
                          f"{cert.not_after:%Y-%m-%d %H:%M} UTC")
        self.stdout.write(f"wrote {', '.join(sorted(files))} to {out}")

    def _revoke(self, options: dict[str, Any]) -> None:
        reason = parse_reason(options["reason"])
        cert = find_certificate(options["serial"])
        revoke_certificate(cert, reason, actor=Actor.system(f"cli:{os.environ.get('USER', 'unknown')}"))
        self.stdout.write(f"revoked {cert.serial} ({cert.tenant.slug}/{cert.device_name}) reason {reason}")

    def _list(self, options: dict[str, Any]) -> None:
        certs = Certificate.objects.select_related("tenant").order_by("tenant__slug", "device_name", "-created")
        if options["tenant"]:
            certs = certs.filter(tenant=get_tenant(options["tenant"]))
        if options["device"]:
            certs = certs.filter(device_name=options["device"])
        rows = [(c.tenant.slug, c.device_name, c.serial, c.effective_status, f"{c.not_after:%Y-%m-%d}",
                 c.fingerprint[:16]) for c in certs]
        if not rows:
            self.stdout.write("no certificates")
            return
        header = ("TENANT", "DEVICE", "SERIAL", "STATUS", "NOT AFTER", "FINGERPRINT")
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())

