"""`tenants/`: members see their tenants, keys their own, staff all; only staff change them."""

from __future__ import annotations

from typing import Any

import pytest

from devices.models import AuditEvent, Tenant

URL = "/api/v1/tenants/"
pytestmark = pytest.mark.django_db


def slugs(client: Any) -> list[str]:
    response = client.get(URL)
    assert response.status_code == 200, response.content
    return [t["slug"] for t in response.json()["results"]]


def test_members_and_keys_see_their_own_tenants_and_staff_see_all(callers: dict[str, Any]) -> None:
    assert slugs(callers["viewer"]) == ["acme"]
    assert slugs(callers["operator_key"]) == ["acme"]
    assert slugs(callers["other_member"]) == ["globex"]
    assert slugs(callers["other_key"]) == ["globex"]
    assert slugs(callers["staff"]) == ["acme", "globex"]


def test_a_member_of_two_tenants_sees_both_with_their_role_in_each(callers: dict[str, Any], member: Any,
                                                                   globex: Any) -> None:
    member("viewer", "two", tenant=globex)
    from devices.models import Membership

    Membership.objects.create(user=Membership.objects.get(user__username="two").user,
                              tenant=Tenant.objects.get(slug="acme"), role="admin")
    from tests.devices.api.conftest import session_client

    client = session_client(Membership.objects.get(user__username="two", tenant=globex).user)
    body = client.get(URL).json()["results"]
    assert [(t["slug"], t["role"]) for t in body] == [("acme", "admin"), ("globex", "viewer")]


def test_a_key_sees_its_own_role(callers: dict[str, Any]) -> None:
    assert callers["operator_key"].get(f"{URL}acme/").json()["role"] == "operator"


def test_staff_create_a_tenant_and_it_is_audited(callers: dict[str, Any]) -> None:
    response = callers["staff"].post(URL, {"slug": "initech", "name": "Initech"})
    assert response.status_code == 201, response.content
    assert (response.json()["slug"], response.json()["name"], response.json()["enabled"]) == (
        "initech", "Initech", True)
    assert response["Location"].endswith("/api/v1/tenants/initech/")
    assert AuditEvent.objects.get(action="tenant.create", tenant__slug="initech").actor_label == "root"


@pytest.mark.parametrize(("body", "field"), [({"slug": "acme"}, "slug"), ({"slug": "no spaces"}, "slug"),
                                            ({"name": "x"}, "slug"), ({"slug": "x" * 64}, "slug")])
def test_a_bad_or_taken_slug_is_a_400(callers: dict[str, Any], body: dict[str, Any], field: str) -> None:
    response = callers["staff"].post(URL, body)
    assert (response.status_code, response.json()["field"]) == (400, field)


def test_staff_disable_and_rename_a_tenant(callers: dict[str, Any]) -> None:
    response = callers["staff"].patch(f"{URL}acme/", {"enabled": False, "name": "ACME Corp"})
    assert (response.status_code, response.json()["enabled"], response.json()["name"]) == (200, False, "ACME Corp")
    assert {e.action for e in AuditEvent.objects.filter(tenant__slug="acme", action__startswith="tenant.")} >= {
        "tenant.disable", "tenant.update"}


def test_a_disabled_tenants_keys_stop_working(callers: dict[str, Any]) -> None:
    callers["staff"].patch(f"{URL}acme/", {"enabled": False})
    assert callers["viewer_key"].get(URL).status_code == 401


def test_staff_delete_a_tenant(callers: dict[str, Any]) -> None:
    assert callers["staff"].delete(f"{URL}globex/").status_code == 204
    assert not Tenant.objects.filter(slug="globex").exists()


def test_an_owner_may_not_delete_their_tenant(callers: dict[str, Any]) -> None:
    response = callers["owner"].delete(f"{URL}acme/")
    assert (response.status_code, response.json()["code"]) == (403, "staff_only")
    assert Tenant.objects.filter(slug="acme").exists()


def test_the_api_root_links_the_tenants_collection_and_each_tenants_collections(callers: dict[str, Any]) -> None:
    body = callers["viewer_key"].get("/api/v1/").json()
    assert body["links"]["tenants"].endswith("/api/v1/tenants/")
    links = body["tenants"][0]["links"]
    for name in ("devices", "groups", "members", "audit-events"):
        assert links[name].endswith(f"/api/v1/tenants/acme/{name}/")
