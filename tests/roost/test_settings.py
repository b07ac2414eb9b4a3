"""Settings come from the environment; production refuses insecure values by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STRONG_KEY = "k3" * 20 + "Zq9-xY_w7!"


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ROOST_", "DATABASE_URL", "REDIS_URL"))}
    clean.update({"ROOST_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "roost.settings"})
    clean.update(env)
    code = "import django; django.setup(); from django.conf import settings; print('DEBUG', settings.DEBUG)"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean, capture_output=True, text=True, timeout=60)


def test_development_defaults_start_without_any_configuration(tmp_path: Path) -> None:
    result = load_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "DEBUG True" in result.stdout
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_production_refuses_debug(tmp_path: Path) -> None:
    result = load_settings(tmp_path, ROOST_ENV="production", ROOST_DEBUG="1", ROOST_SECRET_KEY=STRONG_KEY)
    assert result.returncode != 0
    assert "ROOST_DEBUG must be off" in result.stderr


def test_production_refuses_a_missing_secret_key(tmp_path: Path) -> None:
    result = load_settings(tmp_path, ROOST_ENV="production")
    assert result.returncode != 0
    assert "ROOST_SECRET_KEY" in result.stderr and "must be set" in result.stderr


def test_production_refuses_a_default_looking_secret_key(tmp_path: Path) -> None:
    result = load_settings(tmp_path, ROOST_ENV="production", ROOST_SECRET_KEY="django-insecure-" + "x" * 50)
    assert result.returncode != 0
    assert "ROOST_SECRET_KEY is too weak" in result.stderr


def test_production_refuses_a_wildcard_allowed_host(tmp_path: Path) -> None:
    result = load_settings(
        tmp_path, ROOST_ENV="production", ROOST_SECRET_KEY=STRONG_KEY, ROOST_ALLOWED_HOSTS="*",
        ROOST_PKI_PASSPHRASE="a-long-pki-passphrase-for-tests",
    )
    assert result.returncode != 0
    assert "ROOST_ALLOWED_HOSTS must not contain '*'" in result.stderr


def test_production_reads_the_secret_key_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "key.txt"
    secret.write_text(STRONG_KEY + "\n")
    result = load_settings(
        tmp_path, ROOST_ENV="production", ROOST_SECRET_KEY_FILE=str(secret),
        ROOST_PKI_PASSPHRASE="a-long-pki-passphrase-for-tests",
    )
    assert result.returncode == 0, result.stderr
    assert "DEBUG False" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROOST_WEB_PORT": "eighty"}, "ROOST_WEB_PORT='eighty' is not an integer"),
        ({"ROOST_BROKER_PORT": "70000"}, "ROOST_BROKER_PORT=70000 is above the maximum 65535"),
        ({"ROOST_DEBUG": "maybe"}, "ROOST_DEBUG='maybe' is not a boolean"),
        ({"ROOST_ENV": "staging"}, "ROOST_ENV='staging' is not one of"),
        ({"ROOST_PUBLIC_URL": "example.com"}, "must start with http:// or https://"),
        ({"ROOST_ENROLL_RATE": "thirty"}, "ROOST_ENROLL_RATE='thirty': expected REQUESTS/PERIOD"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL must be a postgres:// or sqlite:// URL"),
    ],
)
def test_a_malformed_value_names_the_setting(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr
