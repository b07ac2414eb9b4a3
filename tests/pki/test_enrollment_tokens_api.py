"""Enrollment tokens through the API (admin role): the secret shown once, listed by prefix,
revoked for good; every bad input refused on its field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from devices.services import create_device, create_group
from pki.enrollment import create_token
from pki.models import EnrollmentToken

from .helpers import csr_pem

URL = "/api/v1/tenants/acme/enrollment-tokens/"


@pytest.fixture
def admin(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, "admin"))


def _enroll(secret: str, name: str) -> Any:
    body = {"token": secret, "name": name, "csr": csr_pem(cn=name)}
    return Client().post("/api/v1/enroll", data=json.dumps(body), content_type="application/json")


@pytest.mark.django_db
def test_a_created_token_is_shown_once_and_enrolls_a_device_into_its_group(acme: Any, admin: Any) -> None:
    create_group(acme, "line-3")
    response = admin.post(URL, {"uses": 2, "expires": "7d", "group": "line-3", "attributes": {"site": "p2"},
                                "label": "batch 7"}, format="json")
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    secret = body.pop("token")
    assert secret.startswith(body["prefix"]) and len(body["prefix"]) == 16
    assert body == {**body, "uses": 0, "max_uses": 2, "group": "line-3", "attributes": {"site": "p2"},
                    "label": "batch 7", "enabled": True, "usable": True, "created_by": "api-key:admin-key"}
    assert _enroll(secret, "meter-1").status_code == 201
    listed = admin.get(URL)
    assert secret not in listed.content.decode()
    row = listed.json()["results"][0]
    assert "token" not in row and (row["prefix"], row["uses"]) == (body["prefix"], 1)


@pytest.mark.django_db
def test_the_list_and_the_detail_never_hold_the_secret_or_its_hash(acme: Any, admin: Any) -> None:
    new = create_token(acme, label="hidden")
    for response in (admin.get(URL), admin.get(f"{URL}{new.token.prefix}/")):
        text = response.content.decode()
        assert response.status_code == 200
        assert new.secret not in text and new.token.token_hash not in text and "hidden" in text


@pytest.mark.django_db
def test_a_token_is_found_by_its_prefix_and_only_in_its_tenant(acme: Any, globex: Any, admin: Any) -> None:
    mine, theirs = create_token(acme), create_token(globex)
    assert admin.get(f"{URL}{mine.token.prefix}/").json()["prefix"] == mine.token.prefix
    for missing in (theirs.token.prefix, "roost_enr_nope00", "x"):
        response = admin.get(f"{URL}{missing}/")
        assert response.status_code == 404 and response.json()["code"] == "token_not_found"


@pytest.mark.django_db
def test_a_revoked_token_enrolls_nothing_more_and_stays_listed(acme: Any, admin: Any) -> None:
    new = create_token(acme, uses=5)
    assert _enroll(new.secret, "meter-1").status_code == 201
    assert admin.delete(f"{URL}{new.token.prefix}/").status_code == 204
    refused = _enroll(new.secret, "meter-2")
    assert refused.status_code == 403 and refused.json()["code"] == "token_disabled"
    shown = admin.get(f"{URL}{new.token.prefix}/").json()
    assert (shown["enabled"], shown["usable"], shown["uses"]) == (False, False, 1)
    assert admin.get(URL, {"enabled": "false"}).json()["results"][0]["prefix"] == new.token.prefix
    assert admin.get(URL, {"enabled": "true"}).json()["results"] == []
    maybe = admin.get(URL, {"enabled": "maybe"})
    assert maybe.status_code == 400 and maybe.json()["field"] == "enabled"


@pytest.mark.django_db
def test_revoking_a_token_twice_is_a_409(acme: Any, admin: Any) -> None:
    new = create_token(acme)
    assert admin.delete(f"{URL}{new.token.prefix}/").status_code == 204
    again = admin.delete(f"{URL}{new.token.prefix}/")
    assert again.status_code == 409 and again.json()["code"] == "already_revoked"


@pytest.mark.django_db
def test_devices_enrolled_with_a_revoked_token_keep_working(acme: Any, admin: Any) -> None:
    new = create_token(acme)
    certificate = _enroll(new.secret, "meter-1").json()
    admin.delete(f"{URL}{new.token.prefix}/")
    shown = admin.get(f"/api/v1/tenants/acme/certificates/{certificate['serial']}/").json()
    assert shown["status"] == "active"


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field", "words"), [
    ({"uses": 0}, "uses", "greater than or equal to 1"),
    ({"uses": "many"}, "uses", "valid integer"),
    ({"expires": "soon"}, "expires", "not a duration"),
    ({"expires": "0h"}, "expires", "more than zero"),
    ({"expires": "4000d"}, "expires", "at most 10 years"),
    ({"expires": 24}, "expires", "valid string"),
    ({"group": "nope"}, "group", "No group 'nope'"),
    ({"attributes": ["a"]}, "attributes", "dictionary"),
    ({"label": "x" * 201}, "label", "200 characters"),
])
def test_bad_token_requests_name_the_field_at_fault(acme: Any, admin: Any, body: dict[str, Any], field: str,
                                                    words: str) -> None:
    response = admin.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field and words in response.json()["message"]
    assert not EnrollmentToken.objects.exists()


@pytest.mark.django_db
def test_a_group_of_another_tenant_cannot_be_named(acme: Any, globex: Any, admin: Any) -> None:
    create_group(globex, "theirs")
    response = admin.post(URL, {"group": "theirs"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "group"


@pytest.mark.django_db
def test_an_operator_can_neither_see_nor_create_tokens(acme: Any, make_api_key: Any, api: Any) -> None:
    operator = api(make_api_key(acme, "operator"))
    create_device(acme, "sensor-1")
    assert operator.get(URL).status_code == 403
    refused = operator.post(URL, {}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "role_required"
    assert not EnrollmentToken.objects.exists()
