"""Fixtures for the broker on the platform: one prepared platform per session, one broker per module.

These tests never use pytest-django's database: the broker is a subprocess and must share
the database with whoever changes the registry, so the platform gets its own (a SQLite file
in a temporary ROOST_DATA_DIR, or a fresh PostgreSQL database when DATABASE_URL names one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.broker.conftest import Client
from tests.broker.integration.platform_harness import Platform, PlatformBroker, PlatformWeb


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    from django.conf import settings

    prepared = Platform(tmp_path_factory.mktemp("roost-platform"), settings.SECRET_KEY)
    try:
        prepared.call("prepare")
        yield prepared
    finally:
        prepared.close()


@pytest.fixture(scope="module")
def broker(platform: Platform) -> Iterator[PlatformBroker]:
    process = PlatformBroker(platform)
    try:
        yield process.start()
    finally:
        process.kill()


@pytest.fixture(scope="module")
def web(platform: Platform, broker: PlatformBroker) -> Iterator[PlatformWeb]:
    """The web service on the platform's database, beside this module's broker."""
    process = PlatformWeb(platform, broker)
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture
def clients() -> Iterator[Callable[[Client], Client]]:
    """Register clients made in a test so they are disconnected and stopped afterwards."""
    made: list[Client] = []

    def track(client: Client) -> Client:
        made.append(client)
        return client

    yield track
    for client in made:
        _quietly(client.client.disconnect)
        _quietly(client.client.loop_stop)


def _quietly(call: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):  # a client the broker already dropped
        call()
