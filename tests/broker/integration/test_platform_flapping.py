"""Flapping detection on the platform broker, configured by ROOST_BROKER_FLAP_*."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.broker.integration.platform_harness import (
    Bundle,
    Platform,
    PlatformBroker,
    connack_code,
    eventually,
)

TENANT = "it-flap"


@pytest.fixture(scope="module", autouse=True)
def registry(platform: Platform) -> dict[str, Bundle]:
    platform.call("tenant_create", slug=TENANT)
    return {name: platform.device(TENANT, name) for name in ("looping", "steady")}


@pytest.fixture(scope="module")
def broker(platform: Platform, registry: dict[str, Bundle]) -> Iterator[PlatformBroker]:
    saved = dict(platform.env)
    platform.env.update(ROOST_BROKER_FLAP_MAX="3", ROOST_BROKER_FLAP_WINDOW="60", ROOST_BROKER_FLAP_BAN="60")
    process = PlatformBroker(platform)
    try:
        process.start()
    finally:
        platform.env.clear()
        platform.env.update(saved)
    yield process
    process.kill()


def _code(broker: PlatformBroker, bundle: Bundle, level: int = 5) -> int | None:
    return connack_code(broker.port, bundle.ca, bundle.cert, bundle.key, bundle.name, level=level)


def test_a_device_connecting_too_often_is_refused_with_0x9f_logged_and_counted(
        broker: PlatformBroker, registry: dict[str, Bundle]) -> None:
    looping, steady = registry["looping"], registry["steady"]
    assert [_code(broker, looping) for _ in range(5)] == [0, 0, 0, 0x9F, 0x9F]
    assert _code(broker, looping, level=4) == 5  # 3.1.1: not authorized
    assert _code(broker, steady) == 0  # the rest of the fleet is not affected
    assert eventually(lambda: broker.metric("roost_broker_flapping_refusals_total") == 3)
    assert broker.metric("roost_broker_flapping_bans_total") == 1
    assert any("flapping" in line and "looping" in line for line in broker.lines)
