from __future__ import annotations

import json
import os
import sys
import time
import zipfile
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from devices import imports, services
from devices.audit import Actor
from devices.import_rows import FORMATS
from devices.models import Device, DeviceGroup, ImportJob, ImportJobState

from ._helpers import format_validation_error, get_device, get_tenant

# Refused rows printed after an import; the rest are counted (the job keeps the first 100).
SHOWN_ERRORS = 20


class Command(BaseCommand):
    help = "Create, list, enable, disable or bulk-import devices of a tenant."

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
        bulk = sub.add_parser(
            "import", help="Import devices from a CSV or JSON file (the API's import job, run here).",
            description="CSV columns: name, display_name, group, tags (a;b), attributes (JSON), attr.KEY, csr. "
                        "Existing devices are reported and left alone, so a file can be imported again.")
        bulk.add_argument("file", help="The CSV or JSON file (- reads standard input).")
        bulk.add_argument("--format", choices=FORMATS, default="", help="Default: from the file name or content.")
        bulk.add_argument("--issue-certs", action="store_true",
                          help="Issue a certificate for every new device (from its csr, or with a new key).")
        bulk.add_argument("--out", metavar="DIR", help="With --issue-certs: write DIR/<name>/device.pem, "
                                                       "device.key and ca.pem.")
        bulk.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")
        for p in sub.choices.values():
            p.add_argument("--tenant", default="default", help="Tenant slug (default: default).")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        try:
            if action == "create":
                self._create(tenant, options)
            elif action == "list":
                self._list(tenant, options["json"])
            elif action == "import":
                self._import(tenant, options)
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

    def _import(self, tenant: Any, options: dict[str, Any]) -> None:
        if options["issue_certs"] and not options["out"]:
            raise CommandError("--issue-certs needs --out DIR: the generated keys are written there.")
        if options["out"] and not options["issue_certs"]:
            raise CommandError("--out goes with --issue-certs.")
        source = options["file"]
        try:
            data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {source}: {exc.strerror or exc}.") from None
        actor = Actor.system(f"cli:{os.environ.get('USER', 'unknown')}")
        job = imports.submit_import(tenant, data, fmt=options["format"], filename="" if source == "-" else source,
                                    issue_certs=options["issue_certs"], actor=actor)
        claimed = imports.claim_job(job.pk)
        if claimed is None:  # only a concurrent prune could do this
            raise CommandError(f"Import job {job.pk} was taken by another runner.")
        bar = ProgressBar(self.stderr, claimed.total, enabled=not options["no_progress"])
        imports.run_job(claimed, progress=bar.update)
        bar.finish()
        self._report(claimed)
        if claimed.state == ImportJobState.FAILED:
            raise CommandError(claimed.message)
        bundle = imports.bundle_file(claimed)
        if bundle is not None:
            count = unpack_bundle(bundle, Path(options["out"]))
            # The keys now live in DIR; no second copy stays in the data directory.
            bundle.unlink()
            ImportJob.objects.filter(pk=claimed.pk).update(has_bundle=False)
            self.stdout.write(f"wrote {count} certificate bundles under {options['out']}")
        if claimed.failed:
            raise CommandError(f"{claimed.failed} of {claimed.total} rows were refused (listed above).")

    def _report(self, job: ImportJob) -> None:
        seconds = (job.timings or {}).get("total", 0.0)
        self.stdout.write(
            f"import {job.pk}: {job.total} rows, {job.created_count} created, {job.existing_count} existing, "
            f"{job.failed} failed, {job.certificate_count} certificates in {seconds:.1f}s")
        for error in job.errors[:SHOWN_ERRORS]:
            where = f" ({error['field']})" if error.get("field") else ""
            self.stderr.write(f"  row {error['row']}: {error['name'] or '-'}{where}: {error['message']}")
        if job.failed > SHOWN_ERRORS:
            self.stderr.write(f"  … and {job.failed - SHOWN_ERRORS} more refused rows")


class ProgressBar:
    """`[#####.....] 4200/10000 rows` on stderr, redrawn in place on a terminal; elsewhere one
    line per tenth, so that logs stay short."""

    width = 30

    def __init__(self, out: OutputWrapper, total: int, *, enabled: bool = True) -> None:
        self.out = out
        self.total = max(total, 1)
        self.enabled = enabled
        self.tty = out.isatty()
        self.last_tenth = -1
        self.started = time.monotonic()

    def update(self, job: ImportJob) -> None:
        if not self.enabled:
            return
        share = min(job.done / self.total, 1.0)
        filled = int(share * self.width)
        elapsed = time.monotonic() - self.started
        rate = job.done / elapsed if elapsed > 0 else 0.0
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {job.done}/{job.total} rows "
                f"{share:4.0%}  {rate:,.0f} rows/s  {job.failed} failed")
        if self.tty:
            self.out.write("\r" + line, ending="")
            self.out.flush()
        elif int(share * 10) > self.last_tenth:
            self.last_tenth = int(share * 10)
            self.out.write(line)

    def finish(self) -> None:
        if self.enabled and self.tty:
            self.out.write("")  # end the redrawn line


def unpack_bundle(bundle: Path, out: Path) -> int:
    """Extract the zip into `out` with the modes it records (device.key 0600); returns the
    number of device folders. Entries pointing outside `out` are refused."""
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    folders: set[str] = set()
    with zipfile.ZipFile(bundle) as archive:
        for info in archive.infolist():
            target = (root / info.filename).resolve()
            if info.is_dir() or not target.is_relative_to(root):
                raise CommandError(f"The bundle has an unexpected entry {info.filename!r}.")
            target.parent.mkdir(parents=True, exist_ok=True)
            mode = (info.external_attr >> 16) & 0o777 or 0o644
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(archive.read(info))
            os.chmod(target, mode)  # an existing file keeps its old mode through O_CREAT
            if "/" in info.filename:
                folders.add(info.filename.split("/", 1)[0])
    return len(folders)
