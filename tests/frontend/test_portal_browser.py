"""The portal in a real browser (Debian's Chromium through Playwright) against the web service
and the broker of a running platform: an operator signs in, creates a device with a generated
key, downloads the zip once, connects the device with mosquitto over mutual TLS, sees it
online, revokes its certificate and sees it go offline.

Screenshots of the main pages, at a laptop's and a phone's width, are saved under this test's
pytest tmp dir (printed at the end, kept by pytest for the last runs).
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker.integration.conftest import broker, platform, web  # noqa: F401 - the live platform
from tests.broker.integration.platform_harness import (
    Platform,
    PlatformBroker,
    PlatformWeb,
    eventually,
)

CHROMIUM = "/usr/bin/chromium"
TENANT = "it-portal"
DEVICE = "e2e-sensor.1"
PASSWORD = "olivia-portal-pass-1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs Debian's chromium (make system-deps)"),
    pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="needs mosquitto-clients (make system-deps)"),
]
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def operator(platform: Platform) -> str:  # noqa: F811
    """A portal user who is an operator of the tenant, made in the platform's own database."""
    platform.call("tenant_create", slug=TENANT)
    done = platform.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from devices.models import Tenant\n"
        "from devices.services import add_member\n"
        f"user = get_user_model().objects.create_user('olivia', password={PASSWORD!r})\n"
        f"add_member(Tenant.objects.get(slug={TENANT!r}), user, 'operator')\n"))
    assert done.returncode == 0, done.stderr
    return "olivia"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Debian's Chromium, never a downloaded browser build.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


class Shots:
    """Full-page screenshots at a laptop's width, and the same URL again at a phone's."""

    def __init__(self, folder: Path, browser: Any, cookies: list[dict[str, Any]]) -> None:
        self.folder = folder
        self.phone = browser.new_context(viewport=PHONE)
        self.phone.add_cookies(cookies)
        self.taken: list[Path] = []

    def take(self, page: Any, name: str) -> None:
        laptop = self.folder / f"{name}-laptop.png"
        page.screenshot(path=str(laptop), full_page=True)
        phone_page = self.phone.new_page()
        phone_page.goto(page.url)
        phone = self.folder / f"{name}-phone.png"
        phone_page.screenshot(path=str(phone), full_page=True)
        phone_page.close()
        self.taken += [laptop, phone]


def _state(page: Any) -> str:
    page.reload()
    return str(page.locator("#device-state").inner_text().strip())


def test_an_operator_onboards_a_device_sees_it_online_and_revokes_it(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, operator: str, tmp_path: Path) -> None:  # noqa: F811
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    page = context.new_page()
    failed_assets: list[str] = []
    page.on("response", lambda r: failed_assets.append(r.url) if "/static/" in r.url and r.status >= 400 else None)
    sub: subprocess.Popen[str] | None = None
    try:
        # `/` leads to the sign-in page; signing in opens the only tenant of the user.
        page.goto(web.url + "/")
        assert page.url.startswith(web.url + "/accounts/login/")
        page.get_by_label("Username").fill(operator)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{web.url}/portal/t/{TENANT}/")
        assert page.locator("#my-role").inner_text() == "operator"
        # The bundle's CSS and JS are served from the checkout's build, not from a CDN.
        assert page.evaluate("typeof window.htmx") == "object"
        shots = Shots(tmp_path, browser, context.cookies())

        # Create the device with a generated key.
        page.get_by_role("link", name="Devices", exact=True).click()
        page.get_by_role("button", name="Create a device").first.click()
        page.get_by_role("textbox", name="Name (required)").fill(DEVICE)
        page.get_by_label("Display name").fill("Boiler room")
        page.get_by_label("Attributes").fill("site=north\nfloor=2")
        shots.take(page, "create-device")
        page.get_by_role("button", name="Create the device and issue its certificate").click()
        page.wait_for_url(f"**/devices/{DEVICE}/issued/**")
        command = page.locator("#mosquitto-command").inner_text().splitlines()[-1]
        assert command == (f"mosquitto_pub --cafile ca.pem --cert device.pem --key device.key -h localhost "
                           f"-p {broker.port} -i {DEVICE} -t devices/{DEVICE}/hello -m hi")
        assert len(page.locator("#p12-passphrase").inner_text().strip()) >= 20
        page.screenshot(path=str(tmp_path / "issued-laptop.png"), full_page=True)

        # The zip, once.
        with page.expect_download() as download:
            page.locator("#download-zip").click()
        archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
        archive.extractall(tmp_path)
        folder = tmp_path / DEVICE
        assert {p.name for p in folder.iterdir()} >= {"ca.pem", "device.pem", "device.key"}
        page.reload()
        assert "This download is gone" in page.content()

        # The exact line from the page works, over mutual TLS to the running broker (the new
        # certificate reaches it through the change feed).
        def published() -> bool:
            done = subprocess.run(shlex.split(command), cwd=folder, capture_output=True, text=True, timeout=20)
            return done.returncode == 0
        eventually(published, timeout=15, interval=0.3)

        # A device that stays connected shows online, with the serial of its certificate.
        sub = subprocess.Popen(
            ["mosquitto_sub", "--cafile", "ca.pem", "--cert", "device.pem", "--key", "device.key",
             "-h", "localhost", "-p", str(broker.port), "-i", DEVICE, "-t", f"devices/{DEVICE}/#"],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        page.goto(f"{web.url}/portal/t/{TENANT}/devices/{DEVICE}/")
        eventually(lambda: _state(page) == "online", timeout=15, interval=0.5)
        serial = page.locator("#certificates tbody tr").first.get_attribute("data-serial")
        eventually(lambda: page.reload() or page.locator("#live-serial").inner_text().strip() == serial,
                   timeout=10, interval=0.5)
        assert "connected" in page.locator("#connection-log").inner_text()
        shots.take(page, "device-online")
        page.goto(f"{web.url}/portal/t/{TENANT}/devices/")
        assert "online" in page.locator(f"tr:has(a:text-is('{DEVICE}'))").inner_text()
        shots.take(page, "device-list")
        page.goto(f"{web.url}/portal/t/{TENANT}/")
        assert page.locator("#count-online").inner_text() == "1"
        shots.take(page, "overview")

        # Revoking its certificate from the device page disconnects it: offline.
        page.goto(f"{web.url}/portal/t/{TENANT}/devices/{DEVICE}/")
        row = page.locator(f"#certificates tr[data-serial='{serial}']")
        row.get_by_label("Reason").select_option("keyCompromise")
        row.get_by_role("button", name="Revoke").click()
        assert "Revoked certificate" in page.locator(".messages").inner_text()
        assert sub.wait(timeout=10) != 0, "mosquitto_sub stayed connected with a revoked certificate"
        eventually(lambda: _state(page) == "offline", timeout=15, interval=0.5)
        assert "revoked" in page.locator(f"#certificates tr[data-serial='{serial}']").inner_text()
        shots.take(page, "device-revoked")

        # Signing out is a button (a POST), back to the sign-in page.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{web.url}/accounts/login/")
        shots.take(page, "sign-in")
        assert failed_assets == []
        print("screenshots:", *sorted(str(p) for p in shots.taken), sep="\n  ")
    finally:
        if sub is not None and sub.poll() is None:
            sub.kill()
            sub.wait()
        context.close()


def test_the_device_list_filters_without_a_reload_through_htmx(
        browser: Any, web: PlatformWeb, platform: Platform, operator: str, tmp_path: Path) -> None:  # noqa: F811
    for name in ("htmx-a", "htmx-b"):
        platform.call("device_create", tenant=TENANT, name=name)
    page = browser.new_page(viewport=LAPTOP)
    try:
        page.goto(f"{web.url}/accounts/login/?next=/portal/t/{TENANT}/devices/")
        page.get_by_label("Username").fill(operator)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"**/portal/t/{TENANT}/devices/")
        page.evaluate("window.notReloaded = true")
        page.get_by_label("Search").fill("htmx-b")
        page.wait_for_function("!document.querySelector('#device-table').textContent.includes('htmx-a')")
        assert "htmx-b" in page.locator("#device-table").inner_text()
        assert page.evaluate("window.notReloaded") is True  # the table was swapped, not the page
        assert "q=htmx-b" in page.url  # and the address can be bookmarked
    finally:
        page.close()
