"""Every ACL and retained-state endpoint asked by every persona: anonymous 401, another tenant's
member or key 404 (names do not leak), too low a role 403, enough of a role the success code.

Viewers read rules, explain decisions and read retained state; operators also clear retained
state; admins also change rules and preview their impact."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from acl.models import AclRule
from acl.services import create_rule
from devices.models import Membership, Role
from devices.services import create_device
from tests.conftest import free_port

RANK = {"viewer_key": 1, "viewer": 1, "operator_key": 2, "operator": 2, "admin_key": 3, "admin": 3,
        "owner": 4, "staff": 4}
CALLERS = ["anonymous", *RANK, "other_key", "other_member"]
WANTED = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}
T = "/api/v1/tenants/acme"
DRAFT = {"subject_kind": "all_devices", "action": "subscribe", "effect": "deny", "topic_filter": "devices/+/cmd"}

# (method, path, body, role needed, success status). `{rule}` is a rule of acme.
ENDPOINTS = [
    ("get", f"{T}/acl-rules/", None, Role.VIEWER, 200),
    ("post", f"{T}/acl-rules/", {"subject_kind": "all_devices", "action": "both", "topic_filter": "x/#"},
     Role.ADMIN, 201),
    ("get", f"{T}/acl-rules/{{rule}}/", None, Role.VIEWER, 200),
    ("patch", f"{T}/acl-rules/{{rule}}/", {"enabled": False}, Role.ADMIN, 200),
    ("delete", f"{T}/acl-rules/{{rule}}/", None, Role.ADMIN, 204),
    ("post", f"{T}/acl/explain", {"subject": {"device": "sensor-1"}, "action": "publish",
                                  "topic": "devices/sensor-1/t"}, Role.VIEWER, 200),
    ("post", f"{T}/acl/impact", DRAFT, Role.ADMIN, 200),
    ("get", f"{T}/retained/?filter=devices/%23", None, Role.VIEWER, 200),
    ("delete", f"{T}/retained/?filter=devices/sensor-1/%23", None, Role.OPERATOR, 202),
]


def _session(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _key(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client



@pytest.fixture
def callers(acme: Any, globex: Any, alice: Any, bob: Any, charlie: Any, make_api_key: Any,
            django_user_model: Any) -> dict[str, APIClient]:
    def member(role: str) -> Any:
        user = django_user_model.objects.create_user(f"{role}-user", password=f"pw-{role}-123456")
        Membership.objects.create(user=user, tenant=acme, role=role)
        return user

    staff = django_user_model.objects.create_superuser("root", password="root-password-1")
    return {
        "anonymous": APIClient(),
        "viewer_key": _key(make_api_key(acme, Role.VIEWER, name="ro")),
        "operator_key": _key(make_api_key(acme, Role.OPERATOR, name="ops")),
        "admin_key": _key(make_api_key(acme, Role.ADMIN, name="adm")),
        "viewer": _session(bob),
        "operator": _session(member(Role.OPERATOR)),
        "admin": _session(member(Role.ADMIN)),
        "owner": _session(alice),
        "other_key": _key(make_api_key(globex, Role.ADMIN, name="globex-admin")),
        "other_member": _session(charlie),
        "staff": _session(staff),
    }


@pytest.fixture
def objects(acme: Any, settings: Any) -> dict[str, Any]:
    settings.ROOST_BROKER_METRICS_PORT = free_port()  # no broker: impact answers from the database
    create_device(acme, "sensor-1")
    rule = create_rule(acme, subject_kind="all_devices", action="publish", topic_filter="fw/#")
    return {"rule": rule.pk}


def expected(caller: str, role: str, success: int) -> int:
    if caller == "anonymous":
        return 401
    if caller.startswith("other"):
        return 404
    return success if RANK[caller] >= WANTED[role] else 403


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path", "body", "role", "success"), ENDPOINTS,
                         ids=[f"{m}-{p.removeprefix(T + '/')}" for m, p, *_ in ENDPOINTS])
def test_each_acl_and_retained_endpoint_answers_each_persona_by_role_and_tenant(
        callers: dict[str, APIClient], objects: dict[str, Any], caller: str, method: str, path: str, body: Any,
        role: str, success: int) -> None:
    rules_before = AclRule.objects.count()
    response = getattr(callers[caller], method)(path.format(**objects), body, format="json")
    assert response.status_code == expected(caller, role, success), response.content
    if response.status_code >= 400:
        assert set(response.json()) == {"code", "message", "field", "errors"}
        assert AclRule.objects.count() == rules_before  # a refused write wrote nothing


@pytest.mark.django_db
def test_the_api_root_lists_the_rules_and_retained_collections(callers: dict[str, APIClient]) -> None:
    tenants = callers["viewer_key"].get("/api/v1/").json()["tenants"]
    links = tenants[0]["links"]
    assert links["acl-rules"].endswith("/api/v1/tenants/acme/acl-rules/")
    assert links["retained"].endswith("/api/v1/tenants/acme/retained/")
