"""The admin's portal pages in a real browser (Debian's Chromium through Playwright) against a
running platform: a draft rule's impact preview lists a live subscription of a device connected
over mutual TLS, taken from the running broker.

Screenshots are saved under this test's pytest tmp dir (printed at the end).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.broker.integration.conftest import broker, clients, platform, web  # noqa: F401 - the live platform
from tests.broker.integration.platform_harness import (
    Bundle,
    Platform,
    PlatformBroker,
    PlatformWeb,
    device_client,
)
from tests.frontend.test_portal_browser import LAPTOP, Shots, browser  # noqa: F401 - the browser
from tests.frontend.test_portal_browser import pytestmark as browser_marks

TENANT = "it-portal-admin"
PASSWORD = "ada-portal-pass-1"
pytestmark = browser_marks


@pytest.fixture(scope="module")
def admin_user(platform: Platform) -> str:  # noqa: F811
    """A portal user who is an admin (not platform staff) of the tenant."""
    platform.call("tenant_create", slug=TENANT)
    done = platform.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from devices.models import Tenant\n"
        "from devices.services import add_member\n"
        f"user = get_user_model().objects.create_user('ada', password={PASSWORD!r})\n"
        f"add_member(Tenant.objects.get(slug={TENANT!r}), user, 'admin')\n"))
    assert done.returncode == 0, done.stderr
    return "ada"


@pytest.fixture(scope="module")
def watcher(platform: Platform, admin_user: str) -> Bundle:  # noqa: F811
    return platform.device(TENANT, "watcher")


def _sign_in(page: Any, web: PlatformWeb, user: str, path: str) -> None:  # noqa: F811
    page.goto(f"{web.url}/accounts/login/?next={path}")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}")


def test_an_admin_previews_a_draft_rules_impact_on_a_live_subscription(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, admin_user: str, watcher: Bundle,  # noqa: F811
        clients: Any, tmp_path: Path) -> None:  # noqa: F811
    # A device connected over mutual TLS holds a subscription in the running broker.
    device = clients(device_client(broker, watcher)).connect()
    assert [g.value for g in device.subscribe("devices/watcher/alerts/#", qos=1)] == [1]

    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    try:
        _sign_in(page, web, admin_user, f"/portal/t/{TENANT}/")
        shots = Shots(tmp_path, browser, context.cookies())
        page.get_by_role("link", name="Access rules").click()
        assert "devices/{device}/#" in page.locator("#rules").inner_text()
        shots.take(page, "rules")
        page.locator("#new-rule").click()
        page.get_by_label("Subject").select_option("device")
        page.get_by_label("Device").fill("watcher")
        page.get_by_label("Action").select_option("subscribe")
        page.get_by_label("Topic filter").fill("devices/{device}/alerts/#")
        page.get_by_label("Effect").select_option("deny")
        page.get_by_role("button", name="Preview impact").click()
        page.wait_for_selector("#impact")
        assert "live session" in page.locator("#live-checked").inner_text()
        row = page.locator("#impact-subscriptions tbody tr").first.inner_text()
        assert "device watcher" in row and "devices/watcher/alerts/#" in row and "dropped" in row
        shots.take(page, "rule-impact")
        # The preview saved nothing: the subscription still delivers.
        device.publish("devices/watcher/alerts/fire", b"drill", qos=1)
        assert [m.payload for m in device.expect(1)] == [b"drill"]

        page.goto(f"{web.url}/portal/t/{TENANT}/rules/explain/?device=watcher&action=subscribe"
                  "&topic=devices/watcher/alerts/fire&qos=1")
        assert page.locator("#decision").inner_text().strip() == "granted"
        shots.take(page, "rule-explain")
        print("screenshots:", *sorted(str(p) for p in shots.taken), sep="\n  ")
    finally:
        context.close()
