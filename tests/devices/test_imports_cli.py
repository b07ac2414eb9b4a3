"""`roost device import FILE [--tenant T] [--issue-certs --out DIR]`: the import job run in the
command's own process, with progress on stderr and the bundle unpacked into DIR."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.core.management.base import CommandError

from devices.models import Device, ImportJob
from tests.devices.import_support import (
    csv_bytes,
    import_data_dir,  # noqa: F401 - autouse fixture
)
from tests.pki.helpers import load_cert

pytestmark = pytest.mark.django_db


def _file(tmp_path: Path, rows: list[dict[str, str]], name: str = "fleet.csv") -> str:
    path = tmp_path / name
    path.write_bytes(csv_bytes(rows))
    return str(path)


def _run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("device", "import", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_creates_the_devices_and_prints_a_summary(acme: Any, tmp_path: Path) -> None:
    out, err = _run(_file(tmp_path, [{"name": "cli-1"}, {"name": "cli-2"}]), "--tenant", "acme")
    assert "2 rows, 2 created, 0 existing, 0 failed" in out
    assert "2/2 rows" in err  # the progress bar
    assert set(Device.objects.filter(tenant=acme).values_list("name", flat=True)) == {"cli-1", "cli-2"}


def test_with_issue_certs_each_new_device_gets_a_folder_in_out(acme: Any, tmp_path: Path,
                                                               import_data_dir: Path) -> None:  # noqa: F811
    out_dir = tmp_path / "out"
    out, _ = _run(_file(tmp_path, [{"name": "cli-1"}, {"name": "cli-2"}]), "--tenant", "acme",
                  "--issue-certs", "--out", str(out_dir), "--no-progress")
    assert "wrote 2 certificate bundles" in out
    for name in ("cli-1", "cli-2"):
        folder = out_dir / name
        leaf = load_cert((folder / "device.pem").read_bytes())
        key = serialization.load_pem_private_key((folder / "device.key").read_bytes(), None)
        assert key.public_key() == leaf.public_key() and (folder / "ca.pem").is_file()
        assert (folder / "device.key").stat().st_mode & 0o777 == 0o600
    # The keys are in DIR now; no second copy stays in the data directory.
    assert not list((import_data_dir / "jobs").glob("*/bundle.zip"))
    assert ImportJob.objects.get().has_bundle is False


def test_refused_rows_are_listed_with_their_row_numbers_and_the_command_fails(acme: Any, tmp_path: Path) -> None:
    path = _file(tmp_path, [{"name": "ok-1"}, {"name": "bad name"}])
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 rows were refused"):
        call_command("device", "import", path, "--tenant", "acme", stdout=io.StringIO(), stderr=err)
    assert "row 3: bad name (name): Invalid device name" in err.getvalue()
    assert Device.objects.filter(name="ok-1").exists()


def test_running_it_again_reports_the_devices_as_existing(acme: Any, tmp_path: Path) -> None:
    path = _file(tmp_path, [{"name": "cli-1"}])
    _run(path, "--tenant", "acme")
    out, _ = _run(path, "--tenant", "acme")
    assert "1 rows, 0 created, 1 existing, 0 failed" in out


def test_issue_certs_needs_a_directory_for_the_keys(acme: Any, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--out DIR"):
        _run(_file(tmp_path, [{"name": "cli-1"}]), "--tenant", "acme", "--issue-certs")
    assert not Device.objects.exists()


def test_a_file_that_cannot_be_read_is_refused_without_a_job(acme: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"hostname\nx\n")
    with pytest.raises(CommandError, match="Unknown column"):
        _run(str(path), "--tenant", "acme")
    with pytest.raises(CommandError, match="Cannot read"):
        _run(str(tmp_path / "missing.csv"), "--tenant", "acme")
    assert not ImportJob.objects.exists()
