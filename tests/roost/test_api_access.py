"""Who may do what through the API: the api-keys permission matrix (admin only), tenant
isolation (another tenant is 404, never 403), staff everywhere, and the `/api/v1/` root."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from devices.apikeys import create_api_key, split_key
from devices.models import ApiKey, Membership, Role

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/tenants/acme/api-keys/"



@pytest.fixture
def callers(acme: Any, globex: Any, alice: Any, bob: Any, charlie: Any, django_user_model: Any,
            make_api_key: Any, api: Any) -> dict[str, Callable[[], APIClient]]:
    """Every kind of caller, by name; each call gives a fresh client."""

    def member(role: str) -> APIClient:
        user = django_user_model.objects.create_user(f"{role}-member")
        Membership.objects.create(user=user, tenant=acme, role=role)
        return session(user)

    def session(user: Any) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    staff = django_user_model.objects.create_user("staffer", is_staff=True)
    made = {
        "viewer-key": api(make_api_key(acme, "viewer")),
        "operator-key": api(make_api_key(acme, "operator")),
        "admin-key": api(make_api_key(acme, "admin")),
        "viewer-member": session(bob),
        "operator-member": member(Role.OPERATOR),
        "admin-member": member(Role.ADMIN),
        "owner-member": session(alice),
        "staff": session(staff),
        "other-tenant-member": session(charlie),
        "other-tenant-admin-key": api(make_api_key(globex, "admin")),
        "anonymous": api(),
    }
    return {name: (lambda client=client: client) for name, client in made.items()}


# (caller, expected status family): admins of acme act, lower roles are refused with 403,
# another tenant learns nothing (404), no credentials is 401.
MATRIX = [
    ("viewer-key", 403), ("operator-key", 403), ("admin-key", 200),
    ("viewer-member", 403), ("operator-member", 403), ("admin-member", 200), ("owner-member", 200),
    ("staff", 200), ("other-tenant-member", 404), ("other-tenant-admin-key", 404), ("anonymous", 401),
]


def outcome(status: int) -> int:
    return 200 if 200 <= status < 300 else status


def assert_refusal_shape(response: Any) -> None:
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"code", "message", "field", "errors"}, body


@pytest.mark.parametrize(("caller", "expected"), MATRIX)
def test_listing_api_keys_needs_the_admin_role(callers: Any, caller: str, expected: int) -> None:
    response = callers[caller]().get(KEYS)
    assert outcome(response.status_code) == expected, response.content
    assert_refusal_shape(response)


@pytest.mark.parametrize(("caller", "expected"), MATRIX)
def test_creating_an_api_key_needs_the_admin_role(callers: Any, caller: str, expected: int) -> None:
    before = ApiKey.objects.count()
    response = callers[caller]().post(KEYS, {"name": "new", "role": "viewer"})
    assert outcome(response.status_code) == expected, response.content
    assert_refusal_shape(response)
    assert ApiKey.objects.count() == before + (1 if expected == 200 else 0)


@pytest.mark.parametrize(("caller", "expected"), MATRIX)
def test_showing_an_api_key_needs_the_admin_role(callers: Any, acme: Any, caller: str, expected: int) -> None:
    prefix = create_api_key(acme, role="viewer", name="target").api_key.prefix
    response = callers[caller]().get(f"{KEYS}{prefix}/")
    assert outcome(response.status_code) == expected, response.content
    assert_refusal_shape(response)


@pytest.mark.parametrize(("caller", "expected"), MATRIX)
def test_revoking_an_api_key_needs_the_admin_role(callers: Any, acme: Any, caller: str, expected: int) -> None:
    target = create_api_key(acme, role="viewer", name="target").api_key
    response = callers[caller]().delete(f"{KEYS}{target.prefix}/")
    assert outcome(response.status_code) == expected, response.content
    assert_refusal_shape(response)
    target.refresh_from_db()
    assert (target.revoked_at is not None) == (expected == 200)


def test_a_key_of_one_tenant_cannot_reach_another_tenants_key_through_its_own_tenant(
        acme: Any, globex: Any, make_api_key: Any, api: Any) -> None:
    theirs = create_api_key(globex, role="admin", name="theirs").api_key
    mine = api(make_api_key(acme, "admin"))
    for response in (mine.get(f"{KEYS}{theirs.prefix}/"), mine.delete(f"{KEYS}{theirs.prefix}/")):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_a_key_of_one_tenant_gets_the_same_404_for_another_tenant_and_a_missing_one(
        acme: Any, globex: Any, make_api_key: Any, api: Any) -> None:
    mine = api(make_api_key(acme, "admin"))
    existing = mine.get("/api/v1/tenants/globex/api-keys/")
    missing = mine.get("/api/v1/tenants/initech/api-keys/")
    assert existing.status_code == missing.status_code == 404
    assert existing.json()["code"] == missing.json()["code"] == "tenant_not_found"


def test_a_key_lists_only_its_own_tenants_keys(acme: Any, globex: Any, make_api_key: Any, api: Any) -> None:
    create_api_key(globex, role="admin", name="theirs")
    names = [k["name"] for k in api(make_api_key(acme, "admin", name="mine")).get(KEYS).json()["results"]]
    assert names == ["mine"]


# The root ------------------------------------------------------------------------------------


def test_the_root_lists_a_keys_own_tenant_only(acme: Any, globex: Any, make_api_key: Any, api: Any) -> None:
    body = api(make_api_key(acme, "viewer")).get("/api/v1/").json()
    assert [t["slug"] for t in body["tenants"]] == ["acme"]
    assert body["tenants"][0]["links"]["api-keys"] == "http://testserver/api/v1/tenants/acme/api-keys/"
    assert body["schema"] == "http://testserver/api/schema/"
    assert body["docs"] == "http://testserver/api/docs/"


def test_the_root_lists_a_members_tenants_only(alice: Any, charlie: Any) -> None:
    client = APIClient()
    client.force_login(alice)
    assert [t["slug"] for t in client.get("/api/v1/").json()["tenants"]] == ["acme"]


def test_the_root_lists_every_tenant_to_platform_staff(acme: Any, globex: Any, django_user_model: Any) -> None:
    client = APIClient()
    client.force_login(django_user_model.objects.create_user("staffer", is_staff=True))
    assert [t["slug"] for t in client.get("/api/v1/").json()["tenants"]] == ["acme", "globex"]


def test_the_root_needs_credentials(api: Any, db: Any) -> None:
    assert api().get("/api/v1/").status_code == 401


def test_an_inactive_staff_user_has_no_rights(acme: Any, django_user_model: Any) -> None:
    client = APIClient()
    user = django_user_model.objects.create_user("former", is_staff=True)
    client.force_login(user)
    user.is_active = False
    user.save()
    assert client.get(KEYS).status_code in {401, 403}


def test_an_admin_key_may_create_an_admin_key_but_never_an_owner_key(
        acme: Any, make_api_key: Any, api: Any) -> None:
    admin = api(make_api_key(acme, "admin"))
    assert admin.post(KEYS, {"role": "admin"}).status_code == 201
    assert admin.post(KEYS, {"role": "owner"}).status_code == 400
    assert split_key(admin.post(KEYS, {"role": "admin"}).json()["key"]) is not None
