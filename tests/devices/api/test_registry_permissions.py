"""Every registry endpoint asked by every persona: anonymous 401, another tenant's member or
key 404 (names do not leak), too low a role 403, enough of a role the success code.

One test per endpoint; each persona's request runs in a savepoint that is rolled back, so a
DELETE by one persona leaves the object there for the next. A failure lists every wrong cell."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from devices.models import AuditEvent, Role
from devices.services import create_device, create_group

RANK = {"viewer_key": 1, "viewer": 1, "operator_key": 2, "operator": 2, "admin_key": 3, "admin": 3,
        "owner": 4, "staff": 4}
CALLERS = ["anonymous", *RANK, "other_key", "other_member"]
T = "/api/v1/tenants/acme"

# (method, path, body, role needed, success status). `{audit}` is an audit event of acme.
ENDPOINTS = [
    ("get", f"{T}/devices/", None, Role.VIEWER, 200),
    ("post", f"{T}/devices/", {"name": "new-1"}, Role.OPERATOR, 201),
    ("get", f"{T}/devices/sensor-1/", None, Role.VIEWER, 200),
    ("patch", f"{T}/devices/sensor-1/", {"display_name": "S1"}, Role.OPERATOR, 200),
    ("delete", f"{T}/devices/sensor-1/", None, Role.OPERATOR, 204),
    ("post", f"{T}/devices/sensor-1/kick", None, Role.OPERATOR, 202),
    ("get", f"{T}/devices/sensor-1/connections/", None, Role.VIEWER, 200),
    ("get", f"{T}/devices/sensor-1/retained/", None, Role.VIEWER, 200),
    ("get", f"{T}/groups/", None, Role.VIEWER, 200),
    ("post", f"{T}/groups/", {"name": "line-2"}, Role.OPERATOR, 201),
    ("get", f"{T}/groups/line-1/", None, Role.VIEWER, 200),
    ("patch", f"{T}/groups/line-1/", {"description": "d"}, Role.OPERATOR, 200),
    ("delete", f"{T}/groups/line-1/", None, Role.OPERATOR, 204),
    ("get", f"{T}/members/", None, Role.ADMIN, 200),
    ("post", f"{T}/members/", {"user": "dana", "role": "viewer"}, Role.ADMIN, 201),
    ("get", f"{T}/members/vera/", None, Role.ADMIN, 200),
    ("patch", f"{T}/members/vera/", {"role": "operator"}, Role.ADMIN, 200),
    ("delete", f"{T}/members/vera/", None, Role.ADMIN, 204),
    ("get", f"{T}/audit-events/", None, Role.ADMIN, 200),
    ("get", f"{T}/audit-events/{{audit}}/", None, Role.ADMIN, 200),
]
WANTED = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


def expected(caller: str, role: str, success: int) -> int:
    if caller == "anonymous":
        return 401
    if caller.startswith("other"):
        return 404
    return success if RANK[caller] >= WANTED[role] else 403


@pytest.fixture
def registry(acme: Any, django_user_model: Any) -> dict[str, Any]:
    group = create_group(acme, "line-1")
    create_device(acme, "sensor-1", group=group)
    django_user_model.objects.create_user("dana", email="dana@example.com")
    return {"audit": AuditEvent.objects.filter(tenant=acme).latest("id").pk}


def ask_everyone(callers: dict[str, Any], method: str, path: str, body: Any) -> dict[str, Any]:
    """{persona: response}, each request undone afterwards."""
    answers = {}
    for caller in CALLERS:
        with transaction.atomic():
            answers[caller] = getattr(callers[caller], method)(path, body, format="json")
            transaction.set_rollback(True)
    return answers


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body", "role", "success"), ENDPOINTS,
                         ids=[f"{m}-{p.removeprefix(T + '/')}" for m, p, *_ in ENDPOINTS])
def test_each_registry_endpoint_answers_each_persona_by_role_and_tenant(
        callers: dict[str, Any], registry: dict[str, Any], method: str, path: str, body: Any, role: str,
        success: int) -> None:
    answers = ask_everyone(callers, method, path.format(**registry), body)
    wrong = {caller: (r.status_code, expected(caller, role, success), r.content[:200])
             for caller, r in answers.items() if r.status_code != expected(caller, role, success)}
    assert wrong == {}
    for response in answers.values():
        if response.status_code >= 400:
            assert set(response.json()) == {"code", "message", "field", "errors"}


# The tenants collection: members and keys see their own, only staff create, change or delete.

TENANT_ENDPOINTS = [
    # (method, path, body, {caller group: status})
    ("get", "/api/v1/tenants/", None, {"member": 200, "other": 200, "staff": 200}),
    ("get", "/api/v1/tenants/acme/", None, {"member": 200, "other": 404, "staff": 200}),
    ("post", "/api/v1/tenants/", {"slug": "initech"}, {"member": 403, "other": 403, "staff": 201}),
    ("patch", "/api/v1/tenants/acme/", {"name": "ACME"}, {"member": 403, "other": 404, "staff": 200}),
    ("delete", "/api/v1/tenants/acme/", None, {"member": 403, "other": 404, "staff": 204}),
]


def tenant_expected(caller: str, statuses: dict[str, int]) -> int:
    if caller == "anonymous":
        return 401
    if caller == "staff":
        return statuses["staff"]
    return statuses["other" if caller.startswith("other") else "member"]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body", "statuses"), TENANT_ENDPOINTS,
                         ids=[f"{m}-{p.removeprefix('/api/v1/')}" for m, p, *_ in TENANT_ENDPOINTS])
def test_each_tenants_endpoint_answers_each_persona(callers: dict[str, Any], method: str, path: str, body: Any,
                                                    statuses: dict[str, int]) -> None:
    answers = ask_everyone(callers, method, path, body)
    wrong = {caller: (r.status_code, tenant_expected(caller, statuses), r.content[:200])
             for caller, r in answers.items() if r.status_code != tenant_expected(caller, statuses)}
    assert wrong == {}
