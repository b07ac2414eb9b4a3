"""`members/`: invite existing users, change roles, remove; nobody manages someone above them
and the last owner stays."""

from __future__ import annotations

from typing import Any

import pytest

from devices.models import AuditEvent, ChangeEvent, Membership, Role

URL = "/api/v1/tenants/acme/members/"
pytestmark = pytest.mark.django_db


def role_of(username: str) -> str | None:
    return Membership.objects.filter(tenant__slug="acme", user__username=username).values_list(
        "role", flat=True).first()


def test_an_admin_lists_members_with_their_roles(callers: dict[str, Any]) -> None:
    body = callers["admin"].get(URL).json()
    assert {(m["username"], m["email"], m["role"]) for m in body["results"]} == {
        ("vera", "vera@example.com", "viewer"), ("otto", "otto@example.com", "operator"),
        ("ada", "ada@example.com", "admin"), ("olivia", "olivia@example.com", "owner")}


def test_an_admin_invites_an_existing_user_by_username(callers: dict[str, Any], django_user_model: Any) -> None:
    django_user_model.objects.create_user("dana")
    response = callers["admin"].post(URL, {"user": "dana", "role": "operator"})
    assert response.status_code == 201, response.content
    assert (response.json()["username"], role_of("dana")) == ("dana", "operator")
    assert response["Location"].endswith("/members/dana/")
    event = AuditEvent.objects.get(action="membership.create")
    assert (event.actor_label, event.after) == ("ada", {"user": "dana", "role": "operator"})
    assert ChangeEvent.objects.filter(kind="membership", op="created").exists()


def test_an_admin_invites_an_existing_user_by_email(callers: dict[str, Any], django_user_model: Any) -> None:
    django_user_model.objects.create_user("dana", email="Dana@Example.com")
    assert callers["admin"].post(URL, {"user": "dana@example.com"}).status_code == 201
    assert role_of("dana") == "viewer"


def test_inviting_nobody_is_a_400_and_creates_no_user(callers: dict[str, Any], django_user_model: Any) -> None:
    before = django_user_model.objects.count()
    response = callers["admin"].post(URL, {"user": "ghost@example.com", "role": "viewer"})
    assert (response.status_code, response.json()["field"], response.json()["code"]) == (400, "user", "unknown_user")
    assert django_user_model.objects.count() == before


def test_an_email_shared_by_two_users_is_a_400(callers: dict[str, Any], django_user_model: Any) -> None:
    django_user_model.objects.create_user("d1", email="same@example.com")
    django_user_model.objects.create_user("d2", email="same@example.com")
    response = callers["admin"].post(URL, {"user": "same@example.com"})
    assert (response.status_code, response.json()["code"]) == (400, "ambiguous_user")


def test_inviting_a_member_again_is_a_400(callers: dict[str, Any]) -> None:
    response = callers["admin"].post(URL, {"user": "vera", "role": "admin"})
    assert (response.status_code, response.json()["field"], response.json()["code"]) == (400, "user", "already_member")
    assert role_of("vera") == "viewer"


def test_a_member_of_another_tenant_can_be_invited(callers: dict[str, Any]) -> None:
    assert callers["admin"].post(URL, {"user": "gus"}).status_code == 201
    assert role_of("gus") == "viewer"


def test_an_unknown_role_is_a_400(callers: dict[str, Any]) -> None:
    response = callers["admin"].patch(f"{URL}vera/", {"role": "superuser"})
    assert (response.status_code, response.json()["field"]) == (400, "role")


def test_an_admin_changes_a_role_and_it_is_audited(callers: dict[str, Any]) -> None:
    response = callers["admin_key"].patch(f"{URL}vera/", {"role": "operator"})
    assert (response.status_code, response.json()["role"]) == (200, "operator")
    event = AuditEvent.objects.get(action="membership.update")
    assert (event.actor_label, event.before["role"], event.after["role"]) == ("api-key:adm", "viewer", "operator")
    assert ChangeEvent.objects.filter(kind="membership", op="updated").exists()


def test_an_admin_removes_a_member_and_it_is_audited(callers: dict[str, Any]) -> None:
    assert callers["admin"].delete(f"{URL}vera/").status_code == 204
    assert role_of("vera") is None
    assert AuditEvent.objects.get(action="membership.delete").before == {"user": "vera", "role": "viewer"}
    assert callers["admin"].get(f"{URL}vera/").status_code == 404


@pytest.mark.parametrize("caller", ["admin", "admin_key"])
def test_an_admin_cannot_grant_the_owner_role(callers: dict[str, Any], caller: str) -> None:
    assert callers[caller].patch(f"{URL}vera/", {"role": "owner"}).status_code == 403
    assert role_of("vera") == "viewer"


@pytest.mark.parametrize("caller", ["admin", "admin_key"])
def test_an_admin_cannot_invite_an_owner(callers: dict[str, Any], caller: str, django_user_model: Any) -> None:
    django_user_model.objects.create_user("dana")
    assert callers[caller].post(URL, {"user": "dana", "role": "owner"}).status_code == 403
    assert role_of("dana") is None


@pytest.mark.parametrize("caller", ["admin", "admin_key"])
def test_an_admin_cannot_demote_or_remove_an_owner(callers: dict[str, Any], caller: str, member: Any) -> None:
    member(Role.OWNER, "second-owner")
    assert callers[caller].patch(f"{URL}olivia/", {"role": "viewer"}).status_code == 403
    assert callers[caller].delete(f"{URL}olivia/").status_code == 403
    assert role_of("olivia") == "owner"


def test_an_admin_may_manage_another_admin(callers: dict[str, Any], member: Any) -> None:
    member(Role.ADMIN, "second-admin")
    assert callers["admin_key"].patch(f"{URL}second-admin/", {"role": "operator"}).status_code == 200


def test_an_owner_grants_and_takes_away_ownership(callers: dict[str, Any]) -> None:
    assert callers["owner"].patch(f"{URL}ada/", {"role": "owner"}).status_code == 200
    assert callers["owner"].patch(f"{URL}ada/", {"role": "admin"}).status_code == 200
    assert role_of("ada") == "admin"


def test_the_last_owner_can_be_neither_demoted_nor_removed(callers: dict[str, Any]) -> None:
    response = callers["owner"].patch(f"{URL}olivia/", {"role": "admin"})
    assert (response.status_code, response.json()["code"]) == (400, "last_owner")
    assert callers["owner"].delete(f"{URL}olivia/").json()["code"] == "last_owner"
    assert callers["staff"].delete(f"{URL}olivia/").json()["code"] == "last_owner"
    assert role_of("olivia") == "owner"


def test_an_owner_may_step_down_once_there_is_another_owner(callers: dict[str, Any], member: Any) -> None:
    member(Role.OWNER, "heir")
    assert callers["owner"].patch(f"{URL}olivia/", {"role": "admin"}).status_code == 200
    assert role_of("olivia") == "admin"


def test_platform_staff_may_grant_ownership(callers: dict[str, Any]) -> None:
    assert callers["staff"].patch(f"{URL}vera/", {"role": "owner"}).status_code == 200
