"""The live device list and device page in a real browser (Debian's Chromium) against a
running platform: presence flips without a reload, a device's messages arrive as it sends
them and its numeric JSON fields are charted (uPlot).

Screenshots at a laptop's and a phone's width are saved under this module's pytest tmp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.broker.integration.conftest import broker, platform, web  # noqa: F401 - the live platform
from tests.broker.integration.platform_harness import Platform, PlatformBroker, PlatformWeb
from tests.frontend.live_support import (
    CHROMIUM,
    browser,  # noqa: F401 - the module's Chromium
    make_tenant_with_people,
    mosquitto,
    publish,
    screenshots,
    sign_in,
    wait_connected,
)

TENANT = "it-live-d"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs Debian's chromium (make system-deps)"),
    pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="needs mosquitto-clients (make system-deps)"),
]


@pytest.fixture(scope="module")
def people(platform: Platform) -> dict[str, str]:  # noqa: F811
    return make_tenant_with_people(platform, TENANT)


def _points(page: Any, series: str) -> int:
    return int(page.evaluate(
        f"document.querySelector('figure[data-series=\"{series}\"]')?.dataset.points ?? '-1'"))


def test_the_device_lists_online_badge_flips_as_a_device_connects_and_disconnects(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str], tmp_path: Path) -> None:
    bundle = platform.device(TENANT, "d-door")
    page = sign_in(browser, web, people["viewer"], f"/portal/t/{TENANT}/devices/")
    sub = None
    try:
        wait_connected(page)
        page.wait_for_selector("body[data-presence='subscribed']")
        page.evaluate("window.notReloaded = true")
        cell = page.locator("td[data-presence='d-door']")
        assert cell.inner_text().strip() == "offline"
        sub = subprocess.Popen(mosquitto("mosquitto_sub", broker, bundle, "-t", "devices/d-door/#"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        page.wait_for_selector("td[data-presence='d-door'][data-online='true']", timeout=10_000)
        assert cell.inner_text().strip() == "online"
        print("screenshots:", *screenshots(page, tmp_path, "device-list"), sep="\n  ")
        sub.terminate()
        sub.wait(timeout=10)
        page.wait_for_selector("td[data-presence='d-door'][data-online='false']", timeout=10_000)
        assert cell.inner_text().strip() == "offline"
        assert page.evaluate("window.notReloaded") is True
    finally:
        if sub is not None and sub.poll() is None:
            sub.kill()
            sub.wait()
        page.context.close()


def test_a_disabled_device_keeps_its_disabled_badge(
        browser: Any, web: PlatformWeb, platform: Platform, people: dict[str, str]) -> None:  # noqa: F811
    platform.call("device_create", tenant=TENANT, name="d-off")
    done = platform.manage("shell", "-c", (
        "from devices.models import Device\n"
        f"Device.objects.filter(tenant__slug={TENANT!r}, name='d-off').update(enabled=False)\n"))
    assert done.returncode == 0, done.stderr
    page = sign_in(browser, web, people["viewer"], f"/portal/t/{TENANT}/devices/")
    try:
        page.wait_for_selector("body[data-presence='subscribed']")
        page.wait_for_timeout(300)
        assert page.locator("td[data-presence='d-off']").inner_text().strip() == "disabled"
    finally:
        page.context.close()


def test_the_device_page_shows_messages_and_charts_each_numeric_field(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str], tmp_path: Path) -> None:
    bundle = platform.device(TENANT, "d-boiler")
    page = sign_in(browser, web, people["viewer"], f"/portal/t/{TENANT}/devices/d-boiler/")
    try:
        page.wait_for_selector("#device-live[data-subscribed='true']", timeout=10_000)
        for i in range(3):
            publish(broker, bundle, "devices/d-boiler/telemetry",
                    json.dumps({"temp": 20 + i, "water": {"bar": 1.5}, "mode": "eco"}))
        page.wait_for_function(
            "document.querySelector('figure[data-series=\"telemetry temp\"]')?.dataset.points === '3'", timeout=5000)
        assert _points(page, "telemetry water.bar") == 3
        assert _points(page, "telemetry mode") == -1  # a string is not charted
        assert page.locator("figure[data-series='telemetry temp'] canvas").count() == 1
        assert page.locator("figure[data-series='telemetry temp'] .chart-last").inner_text() == "22"
        rows = page.locator("#device-messages tbody tr")
        assert rows.count() == 3
        assert '"temp": 22' in rows.first.inner_text()  # newest first
        print("screenshots:", *screenshots(page, tmp_path, "device-page"), sep="\n  ")
    finally:
        page.context.close()


def test_pausing_holds_the_chart_until_it_is_resumed(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str]) -> None:
    bundle = platform.device(TENANT, "d-meter")
    page = sign_in(browser, web, people["viewer"], f"/portal/t/{TENANT}/devices/d-meter/")
    try:
        page.wait_for_selector("#device-live[data-subscribed='true']", timeout=10_000)
        publish(broker, bundle, "devices/d-meter/power", "230.5")
        page.wait_for_function(
            "document.querySelector('figure[data-series=\"power value\"]')?.dataset.points === '1'", timeout=5000)
        page.get_by_label("Pause the charts").check()
        publish(broker, bundle, "devices/d-meter/power", "231")
        page.wait_for_function("document.querySelectorAll('#device-messages tbody tr').length === 2", timeout=5000)
        page.wait_for_timeout(1200)  # past the once-a-second redraw
        assert _points(page, "power value") == 1
        page.get_by_label("Pause the charts").uncheck()
        page.wait_for_function(
            "document.querySelector('figure[data-series=\"power value\"]').dataset.points === '2'", timeout=3000)
        # A one-minute window still holds both; the selector takes effect at once.
        page.get_by_label("Window").select_option("60")
        assert _points(page, "power value") == 2
    finally:
        page.context.close()


def test_a_device_page_does_not_see_another_devices_messages(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str]) -> None:
    mine = platform.device(TENANT, "d-left")
    other = platform.device(TENANT, "d-right")
    page = sign_in(browser, web, people["viewer"], f"/portal/t/{TENANT}/devices/d-left/")
    try:
        page.wait_for_selector("#device-live[data-subscribed='true']", timeout=10_000)
        publish(broker, other, "devices/d-right/temp", "99")
        publish(broker, mine, "devices/d-left/temp", "11")
        page.wait_for_function("document.querySelectorAll('#device-messages tbody tr').length === 1", timeout=5000)
        page.wait_for_timeout(300)
        assert page.locator("#device-messages tbody").inner_text().count("temp") == 1
        assert "11" in page.locator("#device-messages tbody").inner_text()
    finally:
        page.context.close()
