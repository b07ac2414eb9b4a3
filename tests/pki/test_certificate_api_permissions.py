"""Who may do what with certificates and enrollment tokens: every endpoint × every persona.

viewer reads certificates; operator also issues and revokes them; admin also manages enrollment
tokens. Another tenant's key or member finds nothing (404, so names do not leak); anonymous
callers are asked to authenticate (401); platform staff may do everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from devices.models import AuditEvent, Role
from devices.services import create_device
from pki.enrollment import create_token
from pki.issuance import issue_from_csr

from .helpers import csr_pem

T = "/api/v1/tenants/acme"


def _serial(ctx: dict[str, Any]) -> str:
    return str(issue_from_csr(ctx["device"], csr_pem()).certificate.serial)


def _prefix(ctx: dict[str, Any]) -> str:
    return create_token(ctx["tenant"]).token.prefix


# (name, method, path builder, body, least role that may call it)
ENDPOINTS: list[tuple[str, str, Callable[[dict[str, Any]], str], dict[str, Any] | None, str]] = [
    ("list device certificates", "get", lambda c: f"{T}/devices/sensor-1/certificates/", None, Role.VIEWER),
    ("issue a certificate", "post", lambda c: f"{T}/devices/sensor-1/certificates/", {"days": 30}, Role.OPERATOR),
    ("list certificates", "get", lambda c: f"{T}/certificates/", None, Role.VIEWER),
    ("show a certificate", "get", lambda c: f"{T}/certificates/{_serial(c)}/", None, Role.VIEWER),
    ("revoke a certificate", "post", lambda c: f"{T}/certificates/{_serial(c)}/revoke/", {"reason": "superseded"},
     Role.OPERATOR),
    ("list enrollment tokens", "get", lambda c: f"{T}/enrollment-tokens/", None, Role.ADMIN),
    ("create an enrollment token", "post", lambda c: f"{T}/enrollment-tokens/", {"uses": 2}, Role.ADMIN),
    ("show an enrollment token", "get", lambda c: f"{T}/enrollment-tokens/{_prefix(c)}/", None, Role.ADMIN),
    ("revoke an enrollment token", "delete", lambda c: f"{T}/enrollment-tokens/{_prefix(c)}/", None, Role.ADMIN),
]

RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

# persona → the role it holds in acme (None: must not learn that acme exists, or is anonymous)
PERSONAS: dict[str, str | None] = {
    "anonymous": None,
    "viewer key": Role.VIEWER,
    "operator key": Role.OPERATOR,
    "admin key": Role.ADMIN,
    "viewer member": Role.VIEWER,
    "key of another tenant": None,
    "member of another tenant": None,
    "platform staff": Role.ADMIN,
}


@pytest.fixture
def ctx(acme: Any, globex: Any) -> dict[str, Any]:
    return {"tenant": acme, "device": create_device(acme, "sensor-1")}


def _client(persona: str, acme: Any, globex: Any, make_api_key: Any, api: Any, users: Any) -> APIClient:
    keys = {"viewer key": (acme, "viewer"), "operator key": (acme, "operator"), "admin key": (acme, "admin"),
            "key of another tenant": (globex, "admin")}
    if persona in keys:
        tenant, role = keys[persona]
        return api(make_api_key(tenant, role))
    client = api()
    if persona == "viewer member":
        client.force_login(users["bob"])
    elif persona == "member of another tenant":
        client.force_login(users["charlie"])
    elif persona == "platform staff":
        client.force_login(users["staff"])
    return client


@pytest.fixture
def users(bob: Any, charlie: Any, django_user_model: Any) -> dict[str, Any]:
    staff = django_user_model.objects.create_user("ops", password="ops-password-1", is_staff=True)
    return {"bob": bob, "charlie": charlie, "staff": staff}


def _expected(persona: str, least: str) -> int | None:
    """The status a persona gets, or None for 'allowed' (2xx)."""
    if persona == "anonymous":
        return 401
    role = PERSONAS[persona]
    if role is None:
        return 404
    return None if RANK[role] >= RANK[least] else 403


@pytest.mark.django_db
@pytest.mark.parametrize("persona", list(PERSONAS))
@pytest.mark.parametrize(("endpoint", "method", "path", "body", "least"), ENDPOINTS,
                         ids=[e[0] for e in ENDPOINTS])
def test_each_persona_gets_exactly_its_rights_on_each_pki_endpoint(
        persona: str, endpoint: str, method: str, path: Callable[[dict[str, Any]], str], body: Any, least: str,
        ctx: dict[str, Any], acme: Any, globex: Any, make_api_key: Any, api: Any, users: Any) -> None:
    client = _client(persona, acme, globex, make_api_key, api, users)
    response = getattr(client, method)(path(ctx), body, format="json") if body is not None else \
        getattr(client, method)(path(ctx))
    expected = _expected(persona, least)
    if expected is None:
        assert 200 <= response.status_code < 300, (persona, endpoint, response.status_code, response.content)
    else:
        assert response.status_code == expected, (persona, endpoint, response.content)
        assert set(response.json()) == {"code", "message", "field", "errors"}


@pytest.mark.django_db
def test_a_certificate_issued_with_a_key_is_audited_with_the_keys_name(ctx: dict[str, Any], make_api_key: Any,
                                                                       api: Any) -> None:
    client = api(make_api_key(ctx["tenant"], "operator", name="factory-line-3"))
    issued = client.post(f"{T}/devices/sensor-1/certificates/", {}, format="json")
    assert issued.status_code == 201
    event = AuditEvent.objects.get(action="certificate.issue")
    assert (event.actor_kind, event.actor_label) == ("api_key", "api-key:factory-line-3")
    assert event.after["serial"] == issued.json()["serial"]


@pytest.mark.django_db
def test_a_revocation_with_a_key_is_audited_with_the_keys_name(ctx: dict[str, Any], make_api_key: Any,
                                                               api: Any) -> None:
    serial = _serial(ctx)
    client = api(make_api_key(ctx["tenant"], "operator", name="incident-bot"))
    assert client.post(f"{T}/certificates/{serial}/revoke/", {"reason": "keyCompromise"},
                       format="json").status_code == 200
    event = AuditEvent.objects.get(action="certificate.revoke")
    assert (event.actor_kind, event.actor_label) == ("api_key", "api-key:incident-bot")
    assert event.after["reason"] == "keyCompromise"


@pytest.mark.django_db
def test_enrollment_token_writes_with_a_key_are_audited_with_the_keys_name(ctx: dict[str, Any], make_api_key: Any,
                                                                           api: Any) -> None:
    client = api(make_api_key(ctx["tenant"], "admin", name="provisioning"))
    prefix = client.post(f"{T}/enrollment-tokens/", {"uses": 5}, format="json").json()["prefix"]
    assert client.delete(f"{T}/enrollment-tokens/{prefix}/").status_code == 204
    events = {e.action: e for e in AuditEvent.objects.filter(action__startswith="enrollment_token.")}
    assert set(events) == {"enrollment_token.create", "enrollment_token.revoke"}
    assert {e.actor_label for e in events.values()} == {"api-key:provisioning"}
    assert events["enrollment_token.revoke"].after["prefix"] == prefix


@pytest.mark.django_db
def test_the_api_root_lists_the_pki_collections_of_the_callers_tenant(ctx: dict[str, Any], make_api_key: Any,
                                                                      api: Any) -> None:
    body = api(make_api_key(ctx["tenant"], "viewer")).get("/api/v1/").json()
    links = body["tenants"][0]["links"]
    assert links["certificates"].endswith("/api/v1/tenants/acme/certificates/")
    assert links["enrollment-tokens"].endswith("/api/v1/tenants/acme/enrollment-tokens/")
