"""The API keeps its own contract: schemathesis, run against the running web service's own
schema with an admin key, finds no server error and no response outside the schema.

The platform is real: the web service (daphne) on its own database beside a running broker,
a tenant with devices (one online, with retained state), an ACL rule and an admin API key.
Every operation of the schema is exercised in schemathesis' stateless phases (examples,
coverage, fuzzing; valid and invalid input) and its stateful phase (the schema's OpenAPI
links: create, then read, change, act on and delete what was created), with a bounded number
of examples per operation. ROOST_CONTRACT_EXAMPLES changes that bound, ROOST_CONTRACT_SEED
replays a run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker.integration.platform_harness import (
    Platform,
    PlatformBroker,
    PlatformWeb,
    device_client,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TENANT = "fleet"
DEVICES = ["sensor-1", "sensor-2", "gateway.hall-3"]
CHECKS = ["not_a_server_error", "response_schema_conformance", "status_code_conformance",
          "content_type_conformance", "response_headers_conformance"]
PHASES = ["examples", "coverage", "fuzzing", "stateful"]
MAX_EXAMPLES = int(os.environ.get("ROOST_CONTRACT_EXAMPLES", "10"))
# Stateful scenarios (chains of linked calls) for the whole run; each is cheap.
SCENARIOS = int(os.environ.get("ROOST_CONTRACT_SCENARIOS", str(8 * MAX_EXAMPLES)))
# Path parameters bound to objects that exist, so fuzzing reaches past the 404 of a random name.
KNOWN_PARAMETERS = ("name", "device", "serial", "prefix", "id", "pk", "group", "user", "username")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    from django.conf import settings

    prepared = Platform(tmp_path_factory.mktemp("roost-contract"), settings.SECRET_KEY)
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
    # Enrollment has its own, low rate; the fuzzer should reach its logic, not only its 429.
    platform.env["ROOST_ENROLL_RATE"] = "100000/min"
    process = PlatformWeb(platform, broker)
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture(scope="module")
def fleet(platform: Platform, broker: PlatformBroker) -> Iterator[str]:
    """The tenant under test, with devices, one of them online with retained state, a rule,
    and the admin key the run uses (returned)."""
    platform.call("tenant_create", slug=TENANT)
    bundles = [platform.device(TENANT, name) for name in DEVICES[:2]]
    platform.call("device_create", tenant=TENANT, name=DEVICES[2])
    platform.call("rule_create", tenant=TENANT, subject_kind="all_devices", action="both",
                  topic_filter="fleet/#", description="seeded by the contract test")
    online = device_client(broker, bundles[0]).connect()
    online.publish(f"devices/{DEVICES[0]}/state", b'{"on": true}', qos=1, retain=True)
    online.publish(f"devices/{DEVICES[0]}/firmware", b"\x00\xffbinary", qos=1, retain=True)
    deadline = time.monotonic() + 10
    while platform.call("retained", tenant=TENANT, topic=f"devices/{DEVICES[0]}/state") is None:
        assert time.monotonic() < deadline, "the retained message never reached the database"
        time.sleep(0.1)
    seeded = platform.manage("shell", "-c", SEED % TENANT)
    assert seeded.returncode == 0, seeded.stderr
    key = platform.call("api_key_create", tenant=TENANT, role="admin", name="schemathesis")
    try:
        yield key
    finally:
        online.client.disconnect()
        online.client.loop_stop()


# What the registry driver has no operation for, made through the same services: a member
# (for members/{username}) and a finished import job with a bundle (for jobs/{id}/bundle).
SEED = """
from django.contrib.auth import get_user_model
from devices import imports
from devices.models import Tenant
from devices.services import add_member
tenant = Tenant.objects.get(slug=%r)
add_member(tenant, get_user_model().objects.create_user("member-1", email="member-1@example.com"), "viewer")
job = imports.submit_import(tenant, b"name\\nimported-1\\nimported-2\\n", fmt="csv", issue_certs=True)
imports.run_job(imports.claim_job(job.pk))
"""

STAFF_SESSION = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
user = get_user_model().objects.create_superuser("contract-staff", password=None)
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(session.session_key)
"""


def staff_session(platform: Platform) -> dict[str, str]:
    """Headers of a signed-in platform staff member (session cookie and CSRF token), for the
    operations only staff may use: a browser's credentials, since API keys are per tenant."""
    done = platform.manage("shell", "-c", STAFF_SESSION)
    assert done.returncode == 0, done.stderr
    session = done.stdout.strip().splitlines()[-1]
    csrf = "c" * 32
    # An empty Authorization header makes the Bearer scheme step aside for the session.
    return {"Authorization": "", "Cookie": f"sessionid={session}; csrftoken={csrf}", "X-CSRFToken": csrf}


def known_values(web: PlatformWeb, key: str, schema: dict[str, Any]) -> dict[str, list[Any]]:
    """For each path parameter that names an object, the values of the objects that exist,
    read from the list operation of its collection (never the run's own key)."""
    found: dict[str, set[Any]] = {}
    own_prefix = "_".join(key.split("_")[:2])
    for path in schema["paths"]:
        head, _, tail = path.rstrip("/").rpartition("/")
        name = tail.strip("{}")
        if not (tail.startswith("{") and name in KNOWN_PARAMETERS) or "{" in head.replace("{tenant}", ""):
            continue
        status, body, _ = web.request("GET", head.replace("{tenant}", TENANT) + "/?limit=50", key)
        if status != 200 or not isinstance(body, dict):
            continue
        for item in body.get("results", []):
            value = item.get(name) if isinstance(item, dict) else None
            if isinstance(value, str | int) and not isinstance(value, bool) and value != own_prefix:
                found.setdefault(name, set()).add(value)
    found.setdefault("name", set()).update(DEVICES)
    found.setdefault("device", set()).update(DEVICES)
    return {name: sorted(values, key=str) for name, values in found.items()}


def inline_table(values: dict[str, str]) -> str:
    """A TOML inline table (JSON strings are TOML strings)."""
    return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in values.items()) + " }"


def write_config(path: Path, key: str, values: dict[str, list[Any]], staff: dict[str, str],
                 staff_operations: list[str]) -> None:
    lines = [
        "headers = " + inline_table({"Authorization": f"Bearer {key}"}),
        f"generation.max-examples = {MAX_EXAMPLES}",
        # Links come from the schema and from Location headers; schemathesis' own guesses
        # would also link a list to the deletion of its first item, which can be this run's key.
        "[phases.stateful]",
        f"generation.max-examples = {SCENARIOS}",
        'inference.algorithms = ["location-headers"]',
        "[parameters]",
        f'"path.tenant" = "{TENANT}"',
    ]
    for name in values:
        lines.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.6 }}')
    for name, known in values.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(known)}"]
    # Revoking keys is tested on keys the run made or made up, never on values it read from
    # responses: one of those is the run's own key, and revoking it would end the run.
    lines += ["[[operations]]", 'include-operation-id = "tenants_api_keys_destroy"']
    lines += [f"phases.{phase}.extra-data-sources.responses = false" for phase in ("examples", "coverage", "fuzzing")]
    # Tenants are created and deleted by platform staff. Their changes and deletions act on
    # tenants the run made or made up, never on the tenant under test (read from a response).
    for operation_id in staff_operations:
        lines += ["[[operations]]", f'include-operation-id = "{operation_id}"',
                  "headers = " + inline_table(staff)]
        if not operation_id.endswith(("_list", "_create")):
            lines += [f"phases.{phase}.extra-data-sources.responses = false"
                      for phase in ("examples", "coverage", "fuzzing")]
    path.write_text("\n".join(lines) + "\n")


KEY_STATE = """
from devices.models import ApiKey, AuditEvent
key = ApiKey.objects.select_related("tenant").get(prefix=%r)
print("key revoked_at", key.revoked_at, "expires_at", key.expires_at, "tenant enabled", key.tenant.enabled)
ended = (AuditEvent.objects.filter(action="api_key.revoke", target_id=str(key.pk))
         | AuditEvent.objects.filter(action="tenant.disable", tenant=key.tenant)).exclude(actor_kind="system")
for event in ended:
    print("ended by the run:", event.created, event.actor_kind, event.actor_label, event.action, event.target_repr)
"""


def why_the_key_stopped(platform: Platform, key: str) -> str:
    """The key's state, and the audit trail's record of the run revoking it or disabling its tenant."""
    done = platform.manage("shell", "-c", KEY_STATE % "_".join(key.split("_")[:2]))
    return done.stdout[-5000:] + done.stderr[-2000:]


def failures_in(report: dict[str, Any]) -> list[str]:
    """One line per distinct failure or error of the run: what, where, how often."""
    return [json.dumps(item, default=str)[:2000] for item in report.get("failures", []) + report.get("errors", [])]


def test_schemathesis_finds_no_server_error_and_no_response_outside_the_schema(
        platform: Platform, web: PlatformWeb, fleet: str, tmp_path: Path) -> None:
    key = fleet
    status, schema, _ = web.request("GET", "/api/schema/?format=json", key)
    assert status == 200, schema
    operations = sorted(f"{method.upper()} {path}" for path, item in schema["paths"].items()
                        for method in item if method in {"get", "post", "put", "patch", "delete"})
    assert len(operations) >= 5, operations

    config = tmp_path / "schemathesis.toml"
    staff_operations = [op["operationId"] for item in schema["paths"].values()
                        for method, op in item.items()
                        if method in {"post", "put", "patch", "delete"} and op.get("tags") == ["tenants"]]
    assert staff_operations, "the tenants collection has writes"
    write_config(config, key, known_values(web, key, schema), staff_session(platform), staff_operations)
    report = tmp_path / "report.json"
    seed = os.environ.get("ROOST_CONTRACT_SEED")
    command = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(config), "--no-color", "run",
        f"{web.url}/api/schema/?format=json",
        "--checks", ",".join(CHECKS), "--phases", ",".join(PHASES), "--mode", "all",
        "--workers", "1", "--request-timeout", "30",
        "--suppress-health-check", "all", "--max-failures", "50",
        "--report", "json", "--report-json-path", str(report),
        *(["--seed", seed] if seed else []),
    ]
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=800, cwd=tmp_path)
    took = time.monotonic() - started
    output = run.stdout + run.stderr
    print(output[-20000:])
    print(f"schemathesis: {len(operations)} operations, {took:.0f}s, exit {run.returncode}")

    assert report.exists(), output[-5000:]
    if os.environ.get("ROOST_CONTRACT_REPORT_DIR"):  # kept for CI artifacts and for reading
        kept = Path(os.environ["ROOST_CONTRACT_REPORT_DIR"])
        kept.mkdir(parents=True, exist_ok=True)
        (kept / "schemathesis-report.json").write_text(report.read_text())
        (kept / "schemathesis-output.txt").write_text(output)
    found = failures_in(json.loads(report.read_text()))
    details = output.partition("= FAILURES =")[2].partition("= WARNINGS =")[0]
    assert run.returncode == 0 and not found, "\n".join(found) + "\n" + (details or output)[-20000:]
    # The run meant something: the key still worked at its end, or the run itself ended it
    # through the API it tests (revoking it, disabling its tenant), which it could only do
    # authenticated; and every operation was tested.
    if web.request("GET", "/api/v1/", key)[0] == 200:
        assert web.request("GET", f"/api/v1/tenants/{TENANT}/", key)[0] == 200
    else:
        why = why_the_key_stopped(platform, key)
        print(why)
        assert "ended by the run:" in why, why
    counts = json.loads(report.read_text())["operations"]
    assert counts["tested"] == counts["total"] == len(operations), counts


# The docs in a real browser ---------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs Debian's chromium (make system-deps)")
@pytest.mark.parametrize(("path", "rendered"), [
    ("/api/docs/", ".swagger-ui .opblock"),
    ("/api/redoc/", "[data-section-id^='operation/']"),
])
def test_the_api_docs_render_in_a_browser_without_any_other_host(
        web: PlatformWeb, path: str, rendered: str) -> None:
    from playwright.sync_api import sync_playwright

    elsewhere: list[str] = []

    def offline(route: Any) -> None:
        # As on a machine without internet: only this server answers.
        if route.request.url.startswith(web.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.route("**/*", offline)
            failed: list[str] = []
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.goto(web.url + path)
            page.wait_for_selector(rendered, timeout=30_000)
            count = page.locator(rendered).count()
        finally:
            browser.close()
    assert count >= 5, f"only {count} operations shown"
    assert not elsewhere, f"the page asked other hosts for {elsewhere}"
    assert not failed, failed
