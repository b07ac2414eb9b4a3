"""What the live-page browser tests share: portal users made in the platform's database, a
signed-in Chromium page, real devices speaking mosquitto over mutual TLS, and screenshots."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker.integration.platform_harness import Bundle, Platform, PlatformBroker, PlatformWeb

CHROMIUM = "/usr/bin/chromium"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
PASSWORD = "live-pages-pass-1"


def make_tenant_with_people(platform: Platform, tenant: str) -> dict[str, str]:
    """A tenant with an operator and a viewer; returns {role: username}."""
    platform.call("tenant_create", slug=tenant)
    people = {"operator": f"{tenant}-oscar", "viewer": f"{tenant}-vera"}
    script = ("from django.contrib.auth import get_user_model\n"
              "from devices.models import Tenant\n"
              "from devices.services import add_member\n"
              f"tenant = Tenant.objects.get(slug={tenant!r})\n")
    for role, name in people.items():
        script += (f"add_member(tenant, get_user_model().objects.create_user({name!r}, password={PASSWORD!r}), "
                   f"{role!r})\n")
    done = platform.manage("shell", "-c", script)
    assert done.returncode == 0, done.stderr
    return people


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Debian's Chromium, never a downloaded browser build.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def sign_in(browser: Any, web: PlatformWeb, username: str, path: str, viewport: dict[str, int] = LAPTOP) -> Any:
    """A new browser context signed in as `username`, on `path`."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(f"{web.url}/accounts/login/?next={path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{web.url}{path.split('?')[0]}**")
    return page


def wait_connected(page: Any, timeout: float = 10_000) -> None:
    page.wait_for_selector("#mqtt-status[data-state='connected']", timeout=timeout)


def mosquitto(tool: str, broker: PlatformBroker, bundle: Bundle, *args: str) -> list[str]:
    return [tool, "--cafile", bundle.ca, "--cert", bundle.cert, "--key", bundle.key,
            "-h", "localhost", "-p", str(broker.port), "-i", bundle.name, *args]


def publish(broker: PlatformBroker, bundle: Bundle, topic: str, payload: str, *extra: str) -> None:
    """One message from the device over mutual TLS (QoS 1: acknowledged when this returns)."""
    done = subprocess.run(mosquitto("mosquitto_pub", broker, bundle, "-q", "1", "-t", topic, "-m", payload, *extra),
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr


def screenshots(page: Any, folder: Path, name: str) -> list[Path]:
    """The page at a laptop's width, then the same page at a phone's."""
    taken = []
    for label, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        page.wait_for_timeout(300)  # charts follow their container's width
        path = folder / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
    page.set_viewport_size(LAPTOP)
    return taken
