"""API keys: hashed at rest, shown once, refused once revoked or expired, last use recorded,
created from the CLI, and every write made with one audited under its name."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from devices.apikeys import check_key, create_api_key, split_key
from devices.models import ApiKey, AuditEvent

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/tenants/{}/api-keys/"


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "field", "errors"}
    assert body["errors"] and body["errors"][0]["code"] == body["code"]
    if code is not None:
        assert body["code"] == code
    return body


def test_an_api_key_is_stored_only_as_a_hash(acme: Any) -> None:
    key = create_api_key(acme, role="admin", name="factory").key
    secret = split_key(key)[1]  # type: ignore[index]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table}")
        rows = cursor.fetchall()
    stored = [str(value) for row in rows for value in row]
    assert stored, "the key row is in the table"
    assert not any(secret in value or key in value for value in stored)
    assert ApiKey.objects.get().key_hash != key


def test_a_key_checks_against_its_hash_and_a_forged_secret_does_not(acme: Any) -> None:
    key = create_api_key(acme, role="viewer").key
    prefix, secret = split_key(key)  # type: ignore[misc]
    forged = f"{prefix}_{'A' * len(secret)}"
    assert check_key(key) is not None
    assert check_key(forged) is None


def test_the_api_shows_a_new_key_once_and_never_again(acme: Any, make_api_key: Any, api: Any) -> None:
    admin = api(make_api_key(acme, "admin"))
    created = admin.post(KEYS.format("acme"), {"name": "ci", "role": "operator", "expires_days": 30})
    assert created.status_code == 201, created.content
    body = created.json()
    key = body["key"]
    assert key.startswith(body["prefix"] + "_")
    assert created["Location"].endswith(f"/api/v1/tenants/acme/api-keys/{body['prefix']}/")

    listed = admin.get(KEYS.format("acme"))
    shown = admin.get(KEYS.format("acme") + body["prefix"] + "/")
    for response in (listed, shown):
        assert response.status_code == 200
        assert key not in response.content.decode()
        assert b'"key"' not in response.content
    assert shown.json()["role"] == "operator" and shown.json()["expires_at"] is not None


def test_a_key_created_through_the_api_works_with_its_role(acme: Any, make_api_key: Any, api: Any) -> None:
    admin = api(make_api_key(acme, "admin"))
    viewer_key = admin.post(KEYS.format("acme"), {"role": "viewer"}).json()["key"]
    assert api(viewer_key).get("/api/v1/").status_code == 200
    assert_error(api(viewer_key).get(KEYS.format("acme")), 403, "role_required")


def test_a_revoked_key_is_refused_on_the_next_request(acme: Any, make_api_key: Any, api: Any) -> None:
    admin = api(make_api_key(acme, "admin"))
    victim = make_api_key(acme, "operator", name="leaked")
    assert api(victim).get("/api/v1/").status_code == 200
    prefix = split_key(victim)[0]  # type: ignore[index]
    assert admin.delete(KEYS.format("acme") + prefix + "/").status_code == 204

    body = assert_error(api(victim).get("/api/v1/"), 401, "invalid_api_key")
    assert "revoked" in body["message"]
    listed = {k["prefix"]: k for k in admin.get(KEYS.format("acme")).json()["results"]}
    assert listed[prefix]["revoked"] is True and listed[prefix]["revoked_at"] is not None


def test_revoking_a_revoked_key_again_is_a_conflict(acme: Any, make_api_key: Any, api: Any) -> None:
    admin = api(make_api_key(acme, "admin"))
    prefix = split_key(make_api_key(acme, "viewer"))[0]  # type: ignore[index]
    assert admin.delete(KEYS.format("acme") + prefix).status_code == 204
    assert_error(admin.delete(KEYS.format("acme") + prefix), 409, "already_revoked")


def test_an_expired_key_is_refused_on_the_next_request(acme: Any, make_api_key: Any, api: Any) -> None:
    key = make_api_key(acme, "viewer", expires_days=1)
    assert api(key).get("/api/v1/").status_code == 200
    # A day passes: the stored expiry is now behind us.
    ApiKey.objects.filter(prefix=split_key(key)[0]).update(  # type: ignore[index]
        expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(api(key).get("/api/v1/"), 401, "invalid_api_key")


def test_a_key_that_has_not_expired_yet_works(acme: Any, make_api_key: Any, api: Any) -> None:
    key = make_api_key(acme, "viewer", expires_days=1)
    ApiKey.objects.filter(prefix=split_key(key)[0]).update(  # type: ignore[index]
        expires_at=timezone.now() + timedelta(minutes=1))
    assert api(key).get("/api/v1/").status_code == 200


def test_a_key_of_a_disabled_tenant_is_refused(acme: Any, make_api_key: Any, api: Any) -> None:
    key = make_api_key(acme, "admin")
    acme.enabled = False
    acme.save(update_fields=["enabled"])
    assert_error(api(key).get("/api/v1/"), 401, "invalid_api_key")


def test_an_unknown_or_malformed_key_is_refused_with_the_bearer_challenge(api: Any, db: Any) -> None:
    for key in ("rk_000000000000_" + "a" * 43, "not-a-key", "rk_short"):
        response = api(key).get("/api/v1/")
        assert_error(response, 401, "invalid_api_key")
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_request_without_credentials_gets_401_with_the_bearer_challenge(api: Any, db: Any) -> None:
    response = api().get("/api/v1/")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_last_use_time_and_address_are_recorded(acme: Any, make_api_key: Any, api: Any) -> None:
    key = make_api_key(acme, "viewer")
    before = timezone.now()
    assert api(key).get("/api/v1/", REMOTE_ADDR="198.51.100.7").status_code == 200
    row = ApiKey.objects.get(prefix=split_key(key)[0])  # type: ignore[index]
    assert row.last_used_at is not None and row.last_used_at >= before
    assert row.last_used_ip == "198.51.100.7"


def test_a_new_address_is_recorded_at_once(acme: Any, make_api_key: Any, api: Any) -> None:
    key = make_api_key(acme, "viewer")
    api(key).get("/api/v1/", REMOTE_ADDR="198.51.100.7")
    api(key).get("/api/v1/", REMOTE_ADDR="2001:db8::5")
    assert ApiKey.objects.get(prefix=split_key(key)[0]).last_used_ip == "2001:db8::5"  # type: ignore[index]


def test_a_forwarded_for_header_is_not_taken_as_the_address_without_proxies(
        acme: Any, make_api_key: Any, api: Any) -> None:
    key = make_api_key(acme, "viewer")
    api(key).get("/api/v1/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert ApiKey.objects.get(prefix=split_key(key)[0]).last_used_ip == "198.51.100.7"  # type: ignore[index]


def test_a_write_made_with_a_key_is_audited_with_the_keys_name(acme: Any, make_api_key: Any, api: Any) -> None:
    admin = api(make_api_key(acme, "admin", name="provisioner"))
    prefix = admin.post(KEYS.format("acme"), {"name": "ci", "role": "viewer"}).json()["prefix"]
    admin.delete(KEYS.format("acme") + prefix + "/")
    events = AuditEvent.objects.filter(action__in=["api_key.create", "api_key.revoke"], target_id__in=[
        str(ApiKey.objects.get(prefix=prefix).pk)]).order_by("id")
    assert [(e.action, e.actor_kind, e.actor_label) for e in events] == [
        ("api_key.create", "api_key", "api-key:provisioner"),
        ("api_key.revoke", "api_key", "api-key:provisioner"),
    ]
    assert ApiKey.objects.get(prefix=prefix).created_by == "api-key:provisioner"


def test_a_write_made_in_a_browser_session_is_audited_with_the_users_name(
        alice: Any, client: Any) -> None:
    client.force_login(alice)
    response = client.post(KEYS.format("acme"), {"name": "laptop", "role": "viewer"},
                           content_type="application/json")
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="api_key.create")
    assert (event.actor_kind, event.actor_label, event.actor_user) == ("user", "alice", alice)


def test_a_browser_session_must_send_the_csrf_token_to_write(alice: Any) -> None:
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get(KEYS.format("acme")).status_code == 200
    assert_error(browser.post(KEYS.format("acme"), {"role": "viewer"}), 403)


def test_the_api_refuses_an_unknown_role_and_an_expiry_out_of_range(acme: Any, make_api_key: Any, api: Any) -> None:
    admin = api(make_api_key(acme, "admin"))
    body = assert_error(admin.post(KEYS.format("acme"), {"role": "owner"}), 400)
    assert body["field"] == "role"
    body = assert_error(admin.post(KEYS.format("acme"), {"role": "viewer", "expires_days": 0}), 400)
    assert body["field"] == "expires_days"
    body = assert_error(admin.post(KEYS.format("acme"), {"role": "viewer", "name": "x" * 101}), 400)
    assert body["field"] == "name"


def test_keys_can_be_listed_by_whether_they_are_revoked(acme: Any, make_api_key: Any, api: Any) -> None:
    admin = api(make_api_key(acme, "admin", name="admin"))
    gone = split_key(make_api_key(acme, "viewer", name="gone"))[0]  # type: ignore[index]
    admin.delete(KEYS.format("acme") + gone)
    revoked = admin.get(KEYS.format("acme") + "?revoked=true").json()["results"]
    live = admin.get(KEYS.format("acme") + "?revoked=false").json()["results"]
    assert [k["name"] for k in revoked] == ["gone"]
    assert [k["name"] for k in live] == ["admin"]


# The CLI ---------------------------------------------------------------------------------------


def run_cli(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("api-key", *args, stdout=out)
    return out.getvalue().splitlines()


def test_roost_api_key_create_prints_the_key_alone_on_the_last_line_and_it_works(
        acme: Any, api: Any) -> None:
    lines = run_cli("create", "--tenant", "acme", "--role", "operator", "--name", "factory-7",
                    "--expires", "30")
    key = lines[-1]
    assert split_key(key) is not None and key == key.strip()
    assert key not in "\n".join(lines[:-1])
    row = ApiKey.objects.get(prefix=split_key(key)[0])  # type: ignore[index]
    assert (row.name, row.role, row.tenant) == ("factory-7", "operator", acme)
    assert timedelta(days=29) < row.expires_at - timezone.now() <= timedelta(days=30)  # type: ignore[operator]
    assert api(key).get("/api/v1/").json()["tenants"][0]["slug"] == "acme"


def test_roost_api_key_list_never_prints_a_secret(acme: Any) -> None:
    key = run_cli("create", "--tenant", "acme", "--role", "viewer")[-1]
    listing = "\n".join(run_cli("list", "--tenant", "acme"))
    assert split_key(key)[0] in listing  # type: ignore[index]
    assert split_key(key)[1] not in listing  # type: ignore[index]


def test_roost_api_key_revoke_takes_effect_on_the_next_request(acme: Any, api: Any) -> None:
    key = run_cli("create", "--tenant", "acme", "--role", "viewer")[-1]
    run_cli("revoke", "--tenant", "acme", split_key(key)[0])  # type: ignore[index]
    assert_error(api(key).get("/api/v1/"), 401, "invalid_api_key")


def test_roost_api_key_create_refuses_an_unknown_tenant_and_a_bad_expiry(acme: Any) -> None:
    with pytest.raises(CommandError, match="No tenant"):
        run_cli("create", "--tenant", "nope", "--role", "viewer")
    with pytest.raises(CommandError, match="expires_days"):
        run_cli("create", "--tenant", "acme", "--role", "viewer", "--expires", "0")
    assert not ApiKey.objects.exists()
