"""The enrollment tokens page: create (the secret once), list, revoke; bad input at the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from devices.models import DeviceGroup
from pki.enrollment import create_token, hash_token
from pki.models import EnrollmentToken

pytestmark = pytest.mark.django_db

TOKENS = "/portal/t/acme/enrollment-tokens/"



def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_creating_a_token_shows_its_secret_once_and_stores_only_its_hash(alice: Any, acme: Any) -> None:
    group = DeviceGroup.objects.create(tenant=acme, name="line-3")
    client = _client(alice)
    response = client.post(TOKENS, {"label": "batch 7", "uses": "5", "expires_in": "7d", "group": group.pk,
                                    "attributes": "site=north"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = response.context["secret"]
    assert secret.startswith("roost_enr_") and secret in response.content.decode()
    token = EnrollmentToken.objects.get(tenant=acme)
    assert token.token_hash == hash_token(secret) and secret not in str(token.__dict__)
    assert (token.label, token.max_uses, token.group, token.attribute_template) == (
        "batch 7", 5, group, {"site": "north"})
    assert abs(token.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    listed = client.get(TOKENS).content.decode()
    assert token.prefix in listed and secret not in listed


@pytest.mark.parametrize(("changes", "field"), [
    ({"expires_in": "forever"}, "expires_in"),
    ({"expires_in": "0h"}, "expires_in"),
    ({"uses": "0"}, "uses"),
    ({"uses": "many"}, "uses"),
    ({"attributes": "not a pair"}, "attributes"),
    ({"group": "999999"}, "group"),
])
def test_a_bad_token_request_is_refused_at_its_field_and_creates_nothing(alice: Any, acme: Any, changes: Any,
                                                                         field: str) -> None:
    response = _client(alice).post(TOKENS, {"label": "x", "uses": "1", "expires_in": "24h", **changes})
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert "secret" not in response.context
    assert not EnrollmentToken.objects.exists()


def test_a_group_of_another_tenant_cannot_be_chosen(alice: Any, globex: Any) -> None:
    foreign = DeviceGroup.objects.create(tenant=globex, name="theirs")
    response = _client(alice).post(TOKENS, {"uses": "1", "expires_in": "24h", "group": foreign.pk})
    assert "group" in response.context["form"].errors and not EnrollmentToken.objects.exists()


def test_revoking_a_token_disables_it_and_says_so(alice: Any, acme: Any) -> None:
    token = create_token(acme, label="old").token
    client = _client(alice)
    response = client.post(f"{TOKENS}{token.prefix}/revoke/", follow=True)
    token.refresh_from_db()
    assert not token.enabled
    assert "Revoked" in response.content.decode()
    again = client.post(f"{TOKENS}{token.prefix}/revoke/", follow=True)
    assert "already revoked" in again.content.decode()


def test_a_token_of_another_tenant_cannot_be_revoked(alice: Any, globex: Any) -> None:
    token = create_token(globex).token
    assert _client(alice).post(f"{TOKENS}{token.prefix}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.enabled


def test_the_list_shows_only_the_tenants_tokens_with_their_state(alice: Any, acme: Any, globex: Any) -> None:
    usable = create_token(acme, label="fresh").token
    expired = create_token(acme, label="stale").token
    EnrollmentToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    foreign = create_token(globex, label="foreign").token
    response = _client(alice).get(TOKENS)
    assert {t.pk for t in response.context["page"]} == {usable.pk, expired.pk}
    body = response.content.decode()
    assert "usable" in body and "expired" in body and foreign.prefix not in body
