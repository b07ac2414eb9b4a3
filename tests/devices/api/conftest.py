"""Personas for the registry API: a member and an API key of every role in acme, a member and
a key of globex (who must see nothing of acme), and platform staff.

Each persona is a ready DRF client (`callers[name]`), so a test can ask the same question of
all of them."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from devices.models import Membership, Role


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
    """member(role, tenant=acme, name=None) -> a user holding `role` in the tenant."""

    def make(role: str, tenant: Any = None, name: str | None = None) -> Any:
        user = django_user_model.objects.create_user(name or f"{role}-user", email=f"{name or role}@example.com",
                                                     password="pw-" + role + "-123456")
        Membership.objects.create(user=user, tenant=tenant or acme, role=role)
        return user

    return make


@pytest.fixture
def callers(acme: Any, globex: Any, alice: Any, bob: Any, charlie: Any, member: Any, make_api_key: Any,
            django_user_model: Any) -> dict[str, APIClient | None]:
    """Every persona as a client; `anonymous` has no credentials at all."""
    staff = django_user_model.objects.create_superuser("root", password="root-password-1")
    return {
        "anonymous": APIClient(),
        "viewer_key": key_client(make_api_key(acme, Role.VIEWER, name="ro")),
        "operator_key": key_client(make_api_key(acme, Role.OPERATOR, name="ops")),
        "admin_key": key_client(make_api_key(acme, Role.ADMIN, name="adm")),
        "viewer": session_client(bob),
        "operator": session_client(member(Role.OPERATOR)),
        "admin": session_client(member(Role.ADMIN)),
        "owner": session_client(alice),
        "other_key": key_client(make_api_key(globex, Role.ADMIN, name="globex-admin")),
        "other_member": session_client(charlie),
        "staff": session_client(staff),
    }
