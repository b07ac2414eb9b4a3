"""Bulk provisioning as a job: submit a CSV or JSON file, run it in the worker (or in the CLI).

`submit_import` reads the file enough to refuse a malformed one at once (400), stores it
under ROOST_DATA_DIR/jobs/<job id>/ and creates the job row. `claim_job` takes a pending job
for one runner (a conditional UPDATE, so that two workers never run the same job) and
`run_job` imports it chunk by chunk:

- every row is checked as `create_device` checks a device (`import_rows`); a bad row is
  reported with its row number and never stops the others;
- a device whose name already exists is counted as existing and left alone (no second
  device, no new certificate), so running the same file again changes nothing;
- groups are looked up by name and never created: a row naming an unknown group is refused
  (a typo would otherwise scatter devices into new groups);
- with `issue_certs`, each new device gets a certificate, from the row's CSR or with a P-256
  key generated here, and its files (`<name>/device.pem`, `device.key`, `ca.pem`, `chain.pem`)
  go into the job's zip bundle as the job goes (mode 0600: it holds private keys; it is
  deleted with the job after ROOST_IMPORT_KEEP_DAYS).

Each chunk of CHUNK_ROWS rows is one transaction (`import_writes`); progress, the first
MAX_STORED_ERRORS errors and the time spent per phase are saved on the job after every chunk.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from pki.bundles import add_to_zip
from pki.errors import PkiError
from pki.issuance import IssuedCertificate

from .audit import Actor, record_audit
from .import_rows import DeviceRow, RawRow, RowChecker, RowError, chunks, detect_format, parse_rows
from .import_writes import BatchIssuer, PendingCertificate, insert_devices
from .models import Device, ImportJob, ImportJobState, Tenant
from .services import create_device

log = logging.getLogger(__name__)

CHUNK_ROWS = 200
MAX_STORED_ERRORS = 100
INPUT_FILE = {"csv": "input.csv", "json": "input.json"}
BUNDLE_FILE = "bundle.zip"
# A running job saves progress every chunk (about a second); one silent for this long lost its worker.
STALE_AFTER = timedelta(hours=1)
PHASES = ("parse", "devices", "certificates", "bundle")


# Files ----------------------------------------------------------------------------------------


def job_dir(job_id: uuid.UUID | str) -> Path:
    """ROOST_DATA_DIR/jobs/<id>/: the uploaded file and the bundle (0700)."""
    return Path(settings.ROOST_DATA_DIR) / "jobs" / str(job_id)


def bundle_file(job: ImportJob) -> Path | None:
    """The job's zip bundle, if it has one."""
    path = job_dir(job.pk) / BUNDLE_FILE
    return path if job.has_bundle and path.is_file() else None


def _private_file(path: Path) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


# Submitting -----------------------------------------------------------------------------------


def submit_import(tenant: Tenant, data: bytes, *, fmt: str = "", filename: str = "", issue_certs: bool = False,
                  actor: Actor | None = None) -> ImportJob:
    """Check the file's shape, store it and create a pending job (the caller queues `run_import`).

    Raises ValidationError (field `file` or `issue_certs`) for a file that cannot be imported at all."""
    actor = actor or Actor.system()
    fmt = detect_format(data, fmt, filename)
    rows = parse_rows(data, fmt, max_rows=settings.ROOST_IMPORT_MAX_ROWS)
    if not issue_certs and any(row.values.get("csr") for row in rows):
        raise ValidationError({"issue_certs": ValidationError(
            "The file has CSRs; set issue_certs to sign them (or remove the csr column).",
            code="csr_needs_issue_certs")})
    folder: Path | None = None
    try:
        with transaction.atomic():
            job = ImportJob.objects.create(
                tenant=tenant, created_by=actor.label[:200], created_by_kind=actor.kind,
                created_by_user=actor.user if actor.user is not None and actor.user.pk else None,
                input_format=fmt, input_name=Path(filename).name[:200], options={"issue_certs": issue_certs},
                total=len(rows),
            )
            folder = job_dir(job.pk)
            folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            folder.mkdir(mode=0o700)
            with _private_file(folder / INPUT_FILE[fmt]) as fh:
                fh.write(data)
            record_audit(actor, "device.import.submit", job, tenant=tenant,
                         after={"rows": len(rows), "format": fmt, "issue_certs": issue_certs})
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return job


def claim_job(job_id: uuid.UUID | str) -> ImportJob | None:
    """Move a pending job to running for this runner; None if someone else has it (or it is gone)."""
    now = timezone.now()
    claimed = ImportJob.objects.filter(pk=job_id, state=ImportJobState.PENDING).update(
        state=ImportJobState.RUNNING, started=now, updated=now)
    if claimed != 1:
        return None
    return ImportJob.objects.select_related("tenant", "created_by_user").get(pk=job_id)


# Running --------------------------------------------------------------------------------------


def run_job(job: ImportJob, *, progress: Callable[[ImportJob], None] | None = None) -> ImportJob:
    """Import a claimed (running) job to the end; `progress(job)` is called after each chunk.

    Whatever goes wrong as a whole (the CA key locked, the database gone) fails the job with
    a message; the chunks already committed stay, and a re-run reports them as existing."""
    run = _Run(job, progress)
    try:
        run.run()
    except Exception as exc:
        log.exception("import job %s stopped", job.pk)
        run.fail(_failure_message(exc, run))
    return job


def _failure_message(exc: Exception, run: _Run) -> str:
    if isinstance(exc, PkiError):
        return exc.message
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    if isinstance(exc, FileNotFoundError):
        return "The uploaded file is gone from the data directory; submit it again."
    return (f"An internal error stopped the import after {run.done} of {run.job.total} rows "
            "(the worker's log has the details); rows already imported stay, so it is safe to run again.")


class _FastZip(zipfile.ZipFile):
    """Deflate at level 1: PEM text hardly compresses better at the default level, which
    costs several times the CPU (10,000 devices are 50,000 small entries)."""

    def writestr(self, zinfo_or_arcname: Any, data: Any, compress_type: int | None = None,
                 compresslevel: int | None = None) -> None:
        super().writestr(zinfo_or_arcname, data, compress_type, 1 if compresslevel is None else compresslevel)


class _Bundle:
    """The zip of every issued certificate, written as the job goes, renamed when complete."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.file = _private_file(self.partial)
        self.zip = _FastZip(self.file, "w", allowZip64=True)
        self.manifest = io.StringIO()
        self.writer = csv.writer(self.manifest)
        self.writer.writerow(["name", "serial", "fingerprint", "not_after", "key"])
        self.count = 0

    def add(self, issued: IssuedCertificate) -> None:
        record = issued.certificate
        add_to_zip(self.zip, issued, folder=record.device_name)
        self.writer.writerow([record.device_name, record.serial, record.fingerprint,
                              record.not_after.isoformat(), "generated" if issued.private_key_pem else "csr"])
        self.count += 1

    def close(self) -> bool:
        """Finish the archive; True when it holds at least one device."""
        try:
            if self.count:
                info = zipfile.ZipInfo("manifest.csv", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                self.zip.writestr(info, self.manifest.getvalue())
            self.zip.close()
        finally:
            self.file.close()
        if self.count:
            os.replace(self.partial, self.path)
            return True
        self.partial.unlink(missing_ok=True)
        return False


class _Run:
    def __init__(self, job: ImportJob, progress: Callable[[ImportJob], None] | None) -> None:
        self.job = job
        self.tenant = job.tenant
        self.progress = progress
        self.actor = Actor(kind=job.created_by_kind, label=job.created_by, user=job.created_by_user)
        self.timings = dict.fromkeys(PHASES, 0.0)
        self.errors: list[dict[str, Any]] = []
        self.done = self.failed = self.created = self.existing = self.certificates = 0
        self.has_bundle = False
        self.started = time.perf_counter()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] += time.perf_counter() - start

    def run(self) -> None:
        job = self.job
        with self.phase("parse"):
            data = (job_dir(job.pk) / INPUT_FILE[job.input_format]).read_bytes()
            rows = parse_rows(data, job.input_format, max_rows=max(job.total, settings.ROOST_IMPORT_MAX_ROWS))
            del data
            checker = RowChecker(self.tenant, issue_certs=job.issue_certs)
        issuer: BatchIssuer | None = None
        bundle: _Bundle | None = None
        if job.issue_certs:
            with self.phase("certificates"):
                issuer = BatchIssuer(self.tenant, self.actor)
            bundle = _Bundle(job_dir(job.pk) / BUNDLE_FILE)
        try:
            for chunk in chunks(rows, CHUNK_ROWS):
                self._chunk(chunk, checker, issuer, bundle)
                self._save_progress()
        finally:
            if bundle is not None:
                with self.phase("bundle"):
                    self.has_bundle = bundle.close()
        self._finish(ImportJobState.DONE, "")

    def _chunk(self, chunk: list[RawRow], checker: RowChecker, issuer: BatchIssuer | None,
               bundle: _Bundle | None) -> None:
        errors: list[RowError] = []
        checked: list[DeviceRow] = []
        with self.phase("parse"):
            for raw in chunk:
                result = checker.check(raw)
                if isinstance(result, RowError):
                    errors.append(result)
                else:
                    checked.append(result)
        with self.phase("devices"):
            names = [row.device.name for row in checked]
            existing = set(Device.objects.filter(tenant=self.tenant, name__in=names).values_list("name", flat=True))
        new = [row for row in checked if row.device.name not in existing]
        self.existing += len(checked) - len(new)
        pending: list[PendingCertificate] = []
        if issuer is not None and new:
            with self.phase("certificates"):
                pending = issuer.sign(new)
        issued: list[IssuedCertificate] = []
        if new:
            try:
                with transaction.atomic():
                    with self.phase("devices"):
                        insert_devices(new, self.tenant, self.actor)  # sets each row.device's pk
                    if issuer is not None:
                        with self.phase("certificates"):
                            issued = issuer.save(pending)
                self.created += len(new)
            except (IntegrityError, DataError, PkiError) as exc:
                # Another writer created one of these devices meanwhile, or a CSR's key is refused:
                # row by row, through the single-item services, which say which row is at fault.
                log.info("import job %s: a chunk met %s; importing it row by row", self.job.pk, type(exc).__name__)
                issued = self._row_by_row(new, pending, issuer, errors)
        self.certificates += len(issued)
        if bundle is not None and issued:
            with self.phase("bundle"):
                for item in issued:
                    bundle.add(item)
        errors.sort(key=lambda error: error.row)
        for error in errors:
            if len(self.errors) < MAX_STORED_ERRORS:
                self.errors.append(error.as_dict())
        self.failed += len(errors)
        self.done += len(chunk)

    def _row_by_row(self, rows: list[DeviceRow], pending: list[PendingCertificate], issuer: BatchIssuer | None,
                    errors: list[RowError]) -> list[IssuedCertificate]:
        """Each row in a savepoint of its own, through `create_device` and pki's `issue_certificate`."""
        certificates = {item.row.number: item for item in pending}
        issued: list[IssuedCertificate] = []
        with self.phase("devices"), transaction.atomic():
            for row in rows:
                fields = row.device
                item = certificates.get(row.number)
                try:
                    with transaction.atomic():
                        device = create_device(self.tenant, fields.name, display_name=fields.display_name,
                                               group=fields.group, tags=fields.tags, attributes=fields.attributes,
                                               actor=self.actor)
                        one = issuer.issue_one(device, item) if issuer is not None and item is not None else None
                except ValidationError as exc:
                    if Device.objects.filter(tenant=self.tenant, name=fields.name).exists():
                        self.existing += 1
                    else:
                        errors.append(RowError(row.number, fields.name, "invalid", " ".join(exc.messages)))
                    continue
                except PkiError as exc:
                    if exc.status >= 500:
                        raise  # the CA itself is unusable (a missing or locked key): the whole job fails
                    errors.append(RowError(row.number, fields.name, exc.code, exc.message, "csr"))
                    continue
                except IntegrityError:
                    errors.append(RowError(row.number, fields.name, "conflict",
                                           "Another change to this device happened at the same time; run the "
                                           "import again."))
                    continue
                except DataError:
                    errors.append(RowError(row.number, fields.name, "invalid",
                                           "The database refused a value of this row."))
                    continue
                self.created += 1
                if one is not None:
                    issued.append(one)
        return issued

    def _state(self) -> dict[str, Any]:
        return {"done": self.done, "failed": self.failed, "created_count": self.created,
                "existing_count": self.existing, "certificate_count": self.certificates,
                "errors": self.errors, "timings": self._timings()}

    def _timings(self) -> dict[str, float]:
        timings = {name: round(seconds, 3) for name, seconds in self.timings.items()}
        timings["total"] = round(time.perf_counter() - self.started, 3)
        return timings

    def _save_progress(self) -> None:
        state = self._state()
        ImportJob.objects.filter(pk=self.job.pk).update(**state, updated=timezone.now())
        for name, value in state.items():
            setattr(self.job, name, value)
        if self.progress is not None:
            self.progress(self.job)

    def _finish(self, state: str, message: str) -> None:
        job = self.job
        progress = self._state()
        for name, value in progress.items():
            setattr(job, name, value)
        job.state = state
        job.message = message
        job.has_bundle = self.has_bundle
        job.finished = timezone.now()
        with transaction.atomic():
            job.save(update_fields=[*progress, "state", "message", "has_bundle", "finished", "updated"])
            record_audit(self.actor, f"device.import.{'finish' if state == ImportJobState.DONE else 'fail'}", job,
                         tenant=self.tenant, after={
                             "total": job.total, "created": job.created_count, "existing": job.existing_count,
                             "failed": job.failed, "certificates": job.certificate_count, "message": message})

    def fail(self, message: str) -> None:
        self._finish(ImportJobState.FAILED, message)


# Housekeeping ---------------------------------------------------------------------------------


def prune_jobs(now: datetime | None = None) -> int:
    """Fail jobs whose worker died; delete jobs (and their files) older than ROOST_IMPORT_KEEP_DAYS,
    and the folders of jobs deleted with their tenant."""
    now = now or timezone.now()
    for job in ImportJob.objects.filter(state=ImportJobState.RUNNING, updated__lt=now - STALE_AFTER):
        claimed = ImportJob.objects.filter(pk=job.pk, state=ImportJobState.RUNNING, updated=job.updated).update(
            state=ImportJobState.FAILED, finished=now, updated=now,
            message="The worker stopped while running this import; run it again (rows already imported "
                    "are reported as existing).")
        if claimed:
            log.warning("import job %s had no progress since %s; marked failed", job.pk, job.updated)
    cutoff = now - timedelta(days=settings.ROOST_IMPORT_KEEP_DAYS)
    old = list(ImportJob.objects.filter(created__lt=cutoff).exclude(state=ImportJobState.RUNNING)
               .values_list("pk", flat=True))
    for job_id in old:
        shutil.rmtree(job_dir(job_id), ignore_errors=True)
    ImportJob.objects.filter(pk__in=old).delete()
    _remove_orphans(now)
    return len(old)


def _remove_orphans(now: datetime) -> None:
    """Folders whose job row is gone (its tenant was deleted): their bundles hold private keys."""
    root = Path(settings.ROOST_DATA_DIR) / "jobs"
    if not root.is_dir():
        return
    folders = {path.name: path for path in root.iterdir() if path.is_dir()}
    known = {str(pk) for pk in ImportJob.objects.filter(pk__in=[
        name for name in folders if _is_uuid(name)]).values_list("pk", flat=True)}
    # A folder younger than STALE_AFTER may belong to a job being submitted right now.
    cutoff = (now - STALE_AFTER).timestamp()
    for name, path in folders.items():
        if name not in known and _is_uuid(name) and path.stat().st_mtime < cutoff:
            shutil.rmtree(path, ignore_errors=True)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
