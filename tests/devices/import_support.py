"""Shared by the bulk-import tests: a data directory of the test's own, files to import and a
way to run a job to the end in-process (the worker does exactly this)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.pki.helpers import csr_pem, csr_with_swapped_key

GROUP = "line-1"


@pytest.fixture(autouse=True)
def import_data_dir(settings: Any, tmp_path: Path) -> Path:
    """Jobs, bundles and CA keys go to a temporary ROOST_DATA_DIR, never into the checkout."""
    data = tmp_path / "data"
    data.mkdir()
    settings.ROOST_DATA_DIR = data
    settings.ROOST_PKI_PASSPHRASE = ""
    settings.ROOST_PUBLIC_URL = "http://roost.test:8000"
    return data


def csv_bytes(rows: list[dict[str, str]], columns: list[str] | None = None) -> bytes:
    columns = columns or list(rows[0])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def fleet_with_ten_bad_rows(count: int = 1000) -> tuple[bytes, dict[int, tuple[str, str]]]:
    """`count` CSV rows (the header is row 1), ten of them bad; returns (file, {row: (code, field)}).

    Good rows carry attributes, tags, some a group and three a CSR of their own."""
    rows: list[dict[str, str]] = []
    for i in range(count):
        rows.append({
            "name": f"sensor-{i:04d}", "display_name": f"Sensor {i}", "group": GROUP if i % 10 == 3 else "",
            "tags": "pilot;th-2" if i % 2 else "", "attr.site": "north" if i % 3 else "south",
            "attributes": json.dumps({"floor": i % 7}), "csr": csr_pem(cn="ignored") if i in (5, 105, 205) else "",
        })
    bad = {
        10: ({"name": "bad name"}, "invalid_device_name", "name"),
        20: ({"name": "-leading-dash"}, "invalid_device_name", "name"),
        30: ({"name": "x" * 129}, "invalid_device_name", "name"),
        40: ({"name": "sensor-0001"}, "duplicate_row", "name"),
        50: ({"name": "sensor-0002"}, "duplicate_row", "name"),
        60: ({"attributes": "{not json"}, "invalid_attributes", "attributes"),
        70: ({"attributes": "[1, 2]"}, "invalid_attributes", "attributes"),
        80: ({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NS\n-----END CERTIFICATE REQUEST-----\n"},
             "invalid_csr", "csr"),
        90: ({"csr": csr_with_swapped_key()}, "bad_signature", "csr"),
        95: ({"group": "no-such-group"}, "unknown_group", "group"),
    }
    expected = {}
    for index, (change, code, field) in bad.items():
        rows[index].update(change)
        expected[index + 2] = (code, field)
    return csv_bytes(rows), expected


def run_import(tenant: Any, data: bytes, **options: Any) -> Any:
    """Submit, claim and run a job as the worker would; returns the finished job."""
    from devices.imports import claim_job, run_job, submit_import

    job = submit_import(tenant, data, **options)
    claimed = claim_job(job.pk)
    assert claimed is not None
    return run_job(claimed)


def bundle_entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}
