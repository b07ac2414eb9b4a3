"""Shared fixtures: tenants and personas, so every authorization test has its negative case.

alice owns acme, bob is a viewer in acme, charlie belongs to globex and must see nothing of acme.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
from typing import Any

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    database_url = os.environ.get("DATABASE_URL", "")
    skip_pg = pytest.mark.skip(reason="needs DATABASE_URL=postgres://… (CI sets it)")
    skip_redis = pytest.mark.skip(reason="needs REDIS_URL=redis://… (CI sets it)")
    for item in items:
        if "postgres" in item.keywords and not database_url.startswith(("postgres://", "postgresql://")):
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not os.environ.get("REDIS_URL"):
            item.add_marker(skip_redis)


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port for a server a test starts, below the kernel's ephemeral range.

    A port the kernel picked (bind to 0) can be taken again, before the server binds it or
    between a kill and a restart, as the local end of any outgoing connection; ports below
    the range never are. Each is handed out once per test run."""
    low = max(1024, _EPHEMERAL_LOW - 20000)
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, _EPHEMERAL_LOW)
        if port in _handed_out or port == 1883 or port == 8883:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def acme(db: Any) -> Any:
    from devices.services import create_tenant

    return create_tenant("acme", "Acme")


@pytest.fixture
def globex(db: Any) -> Any:
    from devices.services import create_tenant

    return create_tenant("globex", "Globex")


@pytest.fixture
def alice(acme: Any, django_user_model: Any) -> Any:
    from devices.models import Membership, Role

    user = django_user_model.objects.create_user("alice", password="alice-password-1")
    Membership.objects.create(user=user, tenant=acme, role=Role.OWNER)
    return user


@pytest.fixture
def bob(acme: Any, django_user_model: Any) -> Any:
    from devices.models import Membership, Role

    user = django_user_model.objects.create_user("bob", password="bob-password-1")
    Membership.objects.create(user=user, tenant=acme, role=Role.VIEWER)
    return user


@pytest.fixture
def charlie(globex: Any, django_user_model: Any) -> Any:
    from devices.models import Membership, Role

    user = django_user_model.objects.create_user("charlie", password="charlie-password-1")
    Membership.objects.create(user=user, tenant=globex, role=Role.OWNER)
    return user


@pytest.fixture
def admin_client(client: Any, django_user_model: Any) -> Any:
    """The Django test client logged in as a superuser named root (the audit's actor label)."""
    user = django_user_model.objects.create_superuser("root", password="root-password-1")
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Personas' passwords hashed with MD5 in tests: PBKDF2's deliberate slowness is a
    production property, and at hundreds of logins it costs minutes here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    """Throttle counters start at zero in every test (the cache is Redis when REDIS_URL is set)."""
    yield
    from django.core.cache import cache

    with contextlib.suppress(Exception):  # a test without settings or Redis has nothing to clear
        cache.clear()


@pytest.fixture
def make_api_key(db: Any) -> Any:
    """make_api_key(tenant, role="admin", name="") -> the key's secret (shown once)."""
    from devices.apikeys import create_api_key

    def make(tenant: Any, role: str = "admin", name: str = "", expires_days: int | None = None) -> str:
        return create_api_key(tenant, role=role, name=name or f"{role}-key", expires_days=expires_days).key

    return make


@pytest.fixture
def api() -> Any:
    """api(key=None) -> a DRF test client sending `Authorization: Bearer key` when given."""
    from rest_framework.test import APIClient

    def client_for(key: str | None = None) -> Any:
        client = APIClient()
        if key:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return client_for
