"""Personas for the registry API: a member and an API key of every role in acme, a member and
a key of globex (who must see nothing of acme), and platform staff.

Each persona is a ready DRF client (`callers[name]`), so a test can ask the same question of
all of them. The users have no password (sessions are forced), which keeps password hashing
out of every test's setup."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from devices.models import Membership, Role

USERS = {"viewer": "vera", "operator": "otto", "admin": "ada", "owner": "olivia"}


def session_client(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def member(acme: Any, django_user_model: Any) -> Any:
    """member(role, name, tenant=acme) -> a user (no password) holding `role` in the tenant."""

    def make(role: str, name: str, tenant: Any = None) -> Any:
        user = django_user_model.objects.create_user(name, email=f"{name}@example.com")
        Membership.objects.create(user=user, tenant=tenant or acme, role=role)
        return user

    return make


@pytest.fixture
def users(member: Any, globex: Any) -> dict[str, Any]:
    """vera (viewer), otto (operator), ada (admin), olivia (owner) in acme; gus (owner) in globex."""
    found = {role: member(role, name) for role, name in USERS.items()}
    found["other"] = member(Role.OWNER, "gus", tenant=globex)
    return found


@pytest.fixture
def callers(acme: Any, globex: Any, users: dict[str, Any], make_api_key: Any,
            django_user_model: Any) -> dict[str, APIClient]:
    """Every persona as a client; `anonymous` has no credentials at all."""
    staff = django_user_model.objects.create_user("root", is_staff=True, is_superuser=True)
    return {
        "anonymous": APIClient(),
        "viewer_key": key_client(make_api_key(acme, Role.VIEWER, name="ro")),
        "operator_key": key_client(make_api_key(acme, Role.OPERATOR, name="ops")),
        "admin_key": key_client(make_api_key(acme, Role.ADMIN, name="adm")),
        "viewer": session_client(users["viewer"]),
        "operator": session_client(users["operator"]),
        "admin": session_client(users["admin"]),
        "owner": session_client(users["owner"]),
        "other_key": key_client(make_api_key(globex, Role.ADMIN, name="globex-admin")),
        "other_member": session_client(users["other"]),
        "staff": session_client(staff),
    }
