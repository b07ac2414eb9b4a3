"""The topic explorer in a real browser (Debian's Chromium) against a running platform: the
web service relays /mqtt to the platform broker, devices speak mosquitto over mutual TLS.

Screenshots at a laptop's and a phone's width are saved under this module's pytest tmp dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
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

TENANT = "it-live-x"
EXPLORER = f"/portal/t/{TENANT}/explorer/"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs Debian's chromium (make system-deps)"),
    pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="needs mosquitto-clients (make system-deps)"),
]


@pytest.fixture(scope="module")
def people(platform: Platform) -> dict[str, str]:  # noqa: F811
    return make_tenant_with_people(platform, TENANT)


def _open_branch(page: Any, topic: str) -> None:
    page.get_by_role("button", name=f"Open {topic}", exact=True).click()
    page.wait_for_selector("#explorer[data-pending='0']")


def test_the_connection_indicator_says_connected_on_a_portal_page(
        browser: Any, web: PlatformWeb, people: dict[str, str]) -> None:  # noqa: F811
    page = sign_in(browser, web, people["viewer"], f"/portal/t/{TENANT}/")
    try:
        wait_connected(page)
        assert page.locator("#mqtt-status").inner_text().strip() == "Live: connected"
    finally:
        page.context.close()


def test_a_device_message_appears_in_the_open_branch_within_a_second(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str], tmp_path: Path) -> None:
    bundle = platform.device(TENANT, "x-sensor")
    page = sign_in(browser, web, people["viewer"], EXPLORER)
    try:
        wait_connected(page)
        page.wait_for_selector("#explorer[data-pending='0']")
        _open_branch(page, "devices")
        _open_branch(page, "devices/x-sensor")
        publish(broker, bundle, "devices/x-sensor/temp", '{"celsius": 21.5}')
        sent = time.monotonic()
        row = page.locator("li[data-topic='devices/x-sensor/temp'] > .node-row")
        row.wait_for(timeout=1000)
        page.wait_for_function(
            "document.querySelector(\"li[data-topic='devices/x-sensor/temp'] .node-value\").textContent.includes('21.5')",
            timeout=1000)
        elapsed = time.monotonic() - sent
        assert elapsed < 1.0
        assert row.locator(".count").inner_text() == "1"
        # The branch counts what arrived beneath it.
        assert page.locator("li[data-topic='devices'] > .node-row .count").inner_text() == "1"
        print(f"device → browser: shown {elapsed * 1000:.0f} ms after mosquitto_pub returned")
        page.locator("li[data-topic='devices/x-sensor/temp'] .node-name").click()
        assert '"celsius": 21.5' in page.locator("#detail-payload").inner_text()
        assert page.locator("#detail-payload").get_attribute("data-kind") == "json"
        assert page.locator("#history tbody tr").count() == 1
        print("screenshots:", *screenshots(page, tmp_path, "explorer"), sep="\n  ")
    finally:
        page.context.close()


def test_a_closed_branch_is_not_watched(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str]) -> None:
    bundle = platform.device(TENANT, "x-deep")
    page = sign_in(browser, web, people["viewer"], EXPLORER)
    try:
        wait_connected(page)
        page.wait_for_selector("#explorer[data-pending='0']")
        assert page.locator("#explorer-subscriptions").inner_text().split() == ["+", "+/+"]
        publish(broker, bundle, "devices/x-deep/a/b", "deep")
        publish(broker, bundle, "lobby", "hello")  # a device may not publish here: refused, never shown
        _open_branch(page, "devices")
        assert "devices/+/+" in page.locator("#explorer-subscriptions").inner_text().split()
        publish(broker, bundle, "devices/x-deep/a/b", "still deep")
        publish(broker, bundle, "devices/x-deep/shallow", "near")
        # The open branch counts its grandchildren: x-deep's row shows the one it saw (not
        # the four-level topic, which is beyond what the open branch watches).
        page.wait_for_selector("li[data-topic='devices/x-deep'] > .node-row .count:text-is('1')", timeout=2000)
        assert "#" not in page.locator("#explorer-subscriptions").inner_text().split()
        _open_branch(page, "devices/x-deep")
        assert page.locator("li[data-topic='devices/x-deep/shallow'] .node-value").inner_text() == "near"
        assert page.locator("li[data-topic='devices/x-deep/a']").count() == 0
        publish(broker, bundle, "devices/x-deep/a/b", "seen now")
        page.wait_for_selector("li[data-topic='devices/x-deep/a'] > .node-row .count:text-is('1')", timeout=2000)
        assert page.locator("li[data-topic='devices/x-deep'] > .node-row .count").inner_text() == "2"
    finally:
        page.context.close()


def test_a_retained_value_shows_when_the_explorer_opens(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str]) -> None:
    bundle = platform.device(TENANT, "x-config")
    publish(broker, bundle, "devices/x-config/config", '{"interval": 30}', "-r")
    page = sign_in(browser, web, people["viewer"], EXPLORER + "?topic=devices/x-config/config")
    try:
        page.wait_for_function("document.querySelector('#detail-payload').textContent.includes('\"interval\": 30')",
                               timeout=5000)
        assert "retained" in page.locator("#detail-meta").inner_text()
        assert page.locator("li[data-topic='devices/x-config/config'] .badge.retained").is_visible()
        assert page.locator("#history tbody tr td:nth-child(3)").first.inner_text() == "retained"
        # A viewer is not offered to clear it.
        assert page.locator("#clear-retained").count() == 0
    finally:
        page.context.close()


def test_a_viewers_publish_is_refused_and_the_page_says_so(
        browser: Any, web: PlatformWeb, people: dict[str, str]) -> None:  # noqa: F811
    page = sign_in(browser, web, people["viewer"], EXPLORER)
    try:
        wait_connected(page)
        page.locator("#publish summary").click()  # closed for a viewer, who is told why
        assert "the broker refuses your messages" in page.locator("#publish").inner_text()
        page.get_by_role("textbox", name="Topic").fill("devices/x-sensor/cmd")
        page.get_by_label("Payload").fill("let me in")
        page.get_by_role("button", name="Publish").click()
        result = page.locator("#publish-result[data-outcome='refused']")
        result.wait_for(timeout=5000)
        assert result.inner_text() == "Refused by the broker: Not authorized (0x87)"
    finally:
        page.context.close()


def test_an_operators_publish_reaches_a_subscribed_device(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str], tmp_path: Path) -> None:
    bundle = platform.device(TENANT, "x-actuator")
    # Line-buffered, so that its debug line about the SUBACK arrives as it happens.
    sub = subprocess.Popen(["stdbuf", "-oL", *mosquitto("mosquitto_sub", broker, bundle, "-d", "-q", "1", "-C", "1",
                                     "-t", "devices/x-actuator/cmd")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(30, sub.kill)  # never wait forever for its output
    watchdog.start()
    page = sign_in(browser, web, people["operator"], EXPLORER)
    try:
        assert sub.stdout is not None
        for line in sub.stdout:
            if "received SUBACK" in line:
                break
        wait_connected(page)
        page.get_by_role("textbox", name="Topic").fill("devices/x-actuator/cmd")
        page.get_by_label("Payload").fill("open the valve")
        page.get_by_role("button", name="Publish").click()
        result = page.locator("#publish-result[data-outcome='accepted']")
        result.wait_for(timeout=5000)
        assert result.inner_text() == "Accepted by the broker: Success (0x00)"
        print("screenshots:", *screenshots(page, tmp_path, "operator-explorer"), sep="\n  ")
        out, _ = sub.communicate(timeout=10)
        assert "open the valve" in out.splitlines()
    finally:
        watchdog.cancel()
        if sub.poll() is None:
            sub.kill()
            sub.wait()
        page.context.close()


def test_an_operator_clears_a_retained_topic_from_the_explorer(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str]) -> None:
    bundle = platform.device(TENANT, "x-old")
    publish(broker, bundle, "devices/x-old/state", "stale", "-r")
    page = sign_in(browser, web, people["operator"], EXPLORER + "?topic=devices/x-old/state")
    try:
        page.wait_for_function("document.querySelector('#detail-payload').textContent === 'stale'", timeout=5000)
        page.get_by_role("button", name="Clear the retained message").click()
        page.wait_for_function("document.querySelector('#clear-result').textContent.startsWith('Cleared')",
                               timeout=5000)
        assert page.locator("li[data-topic='devices/x-old/state'] .badge.retained").is_hidden()
    finally:
        page.context.close()
    # A page opened afterwards gets no retained value for it any more.
    page = sign_in(browser, web, people["viewer"], EXPLORER + "?topic=devices/x-old/state")
    try:
        page.wait_for_selector("#explorer[data-pending='0']")
        page.wait_for_timeout(500)
        assert page.locator("#detail-payload").inner_text() == ""
    finally:
        page.context.close()


def test_signing_out_in_another_tab_ends_the_live_connection_and_the_indicator_says_why(
        browser: Any, web: PlatformWeb, people: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    page = sign_in(browser, web, people["viewer"], EXPLORER)
    try:
        wait_connected(page)
        other = page.context.new_page()
        other.goto(f"{web.url}/portal/t/{TENANT}/")
        other.get_by_role("button", name="Sign out").click()
        other.wait_for_url(f"{web.url}/accounts/login/")
        page.wait_for_selector("#mqtt-status[data-state='refused']", timeout=5000)
        assert "Not authorized (0x87)" in page.locator("#mqtt-status").inner_text()
        print("screenshots:", *screenshots(page, tmp_path, "signed-out"), sep="\n  ")
    finally:
        page.context.close()


def test_a_flood_of_messages_keeps_the_page_responsive(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str]) -> None:
    bundle = platform.device(TENANT, "x-flood")
    count = 5000
    page = sign_in(browser, web, people["viewer"], EXPLORER)
    try:
        wait_connected(page)
        page.wait_for_selector("#explorer[data-pending='0']")
        _open_branch(page, "devices")
        _open_branch(page, "devices/x-flood")
        assert page.evaluate("PerformanceObserver.supportedEntryTypes.includes('longtask')")
        page.evaluate("""() => {
            window.longest = 0;
            new PerformanceObserver((list) => {
              for (const entry of list.getEntries()) window.longest = Math.max(window.longest, entry.duration);
            }).observe({ type: "longtask", buffered: false });
        }""")
        lines = "".join(f'{{"n": {i}, "topic": {i % 50}}}\n' for i in range(count))
        started = time.monotonic()
        done = subprocess.run(mosquitto("mosquitto_pub", broker, bundle, "-q", "1", "-l", "-t", "devices/x-flood/burst"),
                              input=lines, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        page.wait_for_selector(f"li[data-topic='devices/x-flood/burst'] .count:text-is('{count}')", timeout=20_000)
        elapsed = time.monotonic() - started
        longest = page.evaluate("window.longest")
        print(f"{count} messages shown in {elapsed:.2f}s ({count / elapsed:.0f} msg/s end to end); "
              f"longest main-thread task {longest:.0f} ms")
        assert longest < 250
        assert page.locator("li[data-topic='devices/x-flood/burst'] .node-value").inner_text() == \
            f'{{"n": {count - 1}, "topic": {(count - 1) % 50}}}'
    finally:
        page.context.close()


def test_a_binary_payload_is_shown_as_hex(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str], tmp_path: Path) -> None:
    bundle = platform.device(TENANT, "x-raw")
    blob = tmp_path / "frame.bin"
    blob.write_bytes(b"\x00\xff\x10\x80raw")
    done = subprocess.run(mosquitto("mosquitto_pub", broker, bundle, "-q", "1", "-r", "-t", "devices/x-raw/frame",
                                    "-f", str(blob)), capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    page = sign_in(browser, web, people["viewer"], EXPLORER + "?topic=devices/x-raw/frame")
    try:
        page.wait_for_selector("#detail-payload[data-kind='hex']", timeout=5000)
        assert page.locator("#detail-payload").inner_text() == "0000  00 ff 10 80 72 61 77"
    finally:
        page.context.close()


def test_the_platforms_presence_topics_open_under_roost(
        browser: Any, web: PlatformWeb, broker: PlatformBroker, platform: Platform,  # noqa: F811
        people: dict[str, str]) -> None:
    bundle = platform.device(TENANT, "x-visitor")
    publish(broker, bundle, "devices/x-visitor/hello", "hi")  # connects and leaves: presence is retained
    page = sign_in(browser, web, people["viewer"], EXPLORER)
    try:
        wait_connected(page)
        page.wait_for_selector("#explorer[data-pending='0']")
        _open_branch(page, "$roost")
        _open_branch(page, "$roost/presence")
        row = page.locator("li[data-topic='$roost/presence/x-visitor'] > .node-row")
        row.wait_for(timeout=5000)
        assert '"online":false' in row.locator(".node-value").inner_text()
        assert row.locator(".badge.retained").is_visible()
        assert page.locator(".node-refused").all_inner_texts() == [""] * page.locator(".node-refused").count()
    finally:
        page.context.close()
