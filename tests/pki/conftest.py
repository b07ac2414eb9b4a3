"""PKI fixtures: every test gets its own data directory (CA keys, passphrase, broker files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def fresh_throttles() -> None:
    """Rate limits count per client address in the cache; each test starts at zero."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def pki_data_dir(settings: Any, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    settings.ROOST_DATA_DIR = data
    settings.ROOST_PKI_PASSPHRASE = ""
    settings.ROOST_PUBLIC_URL = "http://roost.test:8000"
    settings.ROOST_BROKER_HOSTNAMES = ["localhost", "127.0.0.1"]
    settings.ROOST_BROKER_TLS_CERT = ""
    settings.ROOST_BROKER_TLS_KEY = ""
    settings.ROOST_PKI_DEVICE_CERT_DAYS = 365
    return data


@pytest.fixture
def acme_sensor(acme: Any) -> Any:
    from devices.services import create_device

    return create_device(acme, "sensor-1")


@pytest.fixture
def globex_sensor(globex: Any) -> Any:
    from devices.services import create_device

    return create_device(globex, "sensor-1")
