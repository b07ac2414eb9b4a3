"""The portal's rule and import pages in a real browser (Debian's Chromium through Playwright)
against a running platform: a draft rule's impact preview lists a live subscription of a device
connected over mutual TLS, taken from the running broker; an operator imports a CSV of 200
devices, run by a real Celery worker, and watches the progress bar reach 100%.

Screenshots are saved under this test's pytest tmp dir (printed at the end).
"""

from __future__ import annotations

import io
import time
import zipfile
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
from tests.broker.integration.test_platform_api_import import Worker, worker  # noqa: F401 - a Celery worker
from tests.devices.import_support import csv_bytes
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
        f"add_member(Tenant.objects.get(slug={TENANT!r}), user, 'admin')\n"
        f"otto = get_user_model().objects.create_user('otto', password={PASSWORD!r})\n"
        f"add_member(Tenant.objects.get(slug={TENANT!r}), otto, 'operator')\n"))
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
        # Only the subject field of the chosen kind is shown (and sent).
        assert page.get_by_label("Device").is_visible() and page.get_by_label("Group").is_hidden()
        page.get_by_label("Device").fill("watcher")
        page.get_by_label("Action").select_option("subscribe")
        page.get_by_label("Topic filter").fill("devices/{device}/alerts/#")
        page.get_by_label("Effect").select_option("deny")
        asked = time.monotonic()
        page.get_by_role("button", name="Preview impact").click()
        page.wait_for_selector("#impact")
        print(f"impact preview with the broker's live sessions: {time.monotonic() - asked:.2f}s")
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

        # An enrollment token: its secret once, then only its prefix; its creation in the audit log.
        page.get_by_role("link", name="Enrollment tokens").click()
        page.get_by_label("Label").fill("batch 7")
        page.get_by_label("Uses").fill("3")
        page.get_by_label("Valid for").fill("7d")
        page.get_by_role("button", name="Create the token").click()
        secret = page.locator("#token-secret").inner_text().strip()
        assert secret.startswith("roost_enr_")
        shots.take(page, "token-created")
        page.get_by_role("link", name="Enrollment tokens").first.click()
        assert secret[:16] in page.locator("#tokens").inner_text() and secret not in page.content()
        shots.take(page, "tokens")
        page.get_by_role("link", name="Audit log").click()
        page.get_by_label("Action").select_option("enrollment_token.create")
        page.wait_for_function("!document.querySelector('#audit-table').textContent.includes('acl_rule')")
        assert secret[:16] in page.locator("#audit").inner_text()
        shots.take(page, "audit")
        print("screenshots:", *sorted(str(p) for p in shots.taken), sep="\n  ")
    finally:
        context.close()


def test_an_operator_imports_200_devices_and_watches_the_progress_bar_reach_100_percent(
        browser: Any, web: PlatformWeb, admin_user: str, worker: Worker, tmp_path: Path) -> None:  # noqa: F811
    source = tmp_path / "fleet.csv"
    rows = [{"name": f"bulk-{i:03d}", "attr.site": "north"} for i in range(199)] + [{"name": "bad name"}]
    source.write_bytes(csv_bytes(rows))
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    page = context.new_page()
    try:
        _sign_in(page, web, "otto", f"/portal/t/{TENANT}/devices/")
        shots = Shots(tmp_path, browser, context.cookies())
        page.locator("#import-devices").click()
        page.get_by_label("CSV file").set_input_files(str(source))
        page.get_by_label("Issue certificates").check()
        shots.take(page, "import-start")
        started = time.monotonic()
        page.get_by_role("button", name="Start the import").click()
        page.wait_for_url("**/devices/-/import/*/")
        page.evaluate("window.notReloaded = true")
        bar = page.locator("#import-bar")
        assert bar.get_attribute("max") == "200"
        # Every value the bar shows while the job runs (the fragment is swapped, so query it each time).
        page.evaluate("window.seen = []; setInterval(() => window.seen.push("
                      "document.querySelector('#import-bar').getAttribute('value')), 50)")
        # htmx polls the progress fragment every second; the worker moves it to the end.
        page.wait_for_function("document.querySelector('#import-progress').dataset.state === 'done'",
                               timeout=120_000, polling=100)
        page.wait_for_function("window.seen.at(-1) === '200'")
        print(f"upload to a full progress bar: {time.monotonic() - started:.2f}s")
        seen = [int(v) for v in dict.fromkeys(page.evaluate("window.seen"))]
        assert page.evaluate("window.notReloaded") is True  # the bar moved without a reload
        assert seen == sorted(seen) and seen[-1] == 200, seen
        assert page.evaluate("document.querySelector('#import-bar').position") == 1.0  # 100%
        assert "200 of 200 rows done" in page.locator("#import-counts").inner_text()
        assert page.locator("#import-failed").inner_text() == "1 failed"
        assert "bad name" in page.locator("#import-errors").inner_text()
        shots.take(page, "import-done")
        with page.expect_download() as download:
            page.locator("#download-bundle").click()
        names = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())).namelist()
        assert len({n.split("/")[0] for n in names if n.endswith("/device.pem")}) == 199
        print("progress seen:", seen)
        print("screenshots:", *sorted(str(p) for p in shots.taken), sep="\n  ")
    finally:
        context.close()
