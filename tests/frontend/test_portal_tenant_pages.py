"""The tenant's certificates, API keys and members pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from django.utils import timezone

from devices.apikeys import check_key, create_api_key
from devices.models import ApiKey, AuditEvent, Membership, Role
from devices.services import create_device
from pki.issuance import issue_certificate
from pki.models import Certificate, CertificateStatus
from pki.revocation import revoke_certificate

pytestmark = pytest.mark.django_db

CERTS = "/portal/t/acme/certificates/"
KEYS = "/portal/t/acme/api-keys/"
MEMBERS = "/portal/t/acme/members/"



def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _member(acme: Any, django_user_model: Any, name: str, role: str, **fields: Any) -> Any:
    user = django_user_model.objects.create_user(name, password="x-password-1", **fields)
    Membership.objects.create(user=user, tenant=acme, role=role)
    return user


def _cert(device: Any) -> Certificate:
    return issue_certificate(device, ec.generate_private_key(ec.SECP256R1()).public_key())


# Certificates -----------------------------------------------------------------------------------


@pytest.fixture
def certs(acme: Any, globex: Any) -> dict[str, Certificate]:
    boiler, pump = create_device(acme, "boiler"), create_device(acme, "pump")
    made = {"active": _cert(boiler), "revoked": _cert(pump), "soon": _cert(pump), "old": _cert(boiler)}
    revoke_certificate(made["revoked"], "superseded")
    now = timezone.now()
    Certificate.objects.filter(pk=made["soon"].pk).update(not_after=now + timedelta(days=10))
    Certificate.objects.filter(pk=made["old"].pk).update(not_after=now - timedelta(days=1))
    made["foreign"] = _cert(create_device(globex, "boiler"))
    return made


def _serials(client: Client, query: str = "") -> set[str]:
    response = client.get(CERTS + query)
    assert response.status_code == 200
    return {c.serial for c in response.context["page"]}


def test_the_certificates_page_lists_the_tenants_certificates_by_status(bob: Any, certs: Any) -> None:
    client = _client(bob)
    assert _serials(client) == {certs[k].serial for k in ("active", "revoked", "soon", "old")}
    assert _serials(client, "?status=active") == {certs["active"].serial, certs["soon"].serial}
    assert _serials(client, "?status=expiring") == {certs["soon"].serial}
    assert _serials(client, "?status=revoked") == {certs["revoked"].serial}
    assert _serials(client, "?status=expired") == {certs["old"].serial}
    assert _serials(client, "?status=nonsense") == _serials(client)


def test_certificates_are_found_by_device_name_or_serial(bob: Any, certs: Any) -> None:
    client = _client(bob)
    assert _serials(client, "?q=pump") == {certs["revoked"].serial, certs["soon"].serial}
    assert _serials(client, f"?q={certs['active'].serial[:12].upper()}") == {certs["active"].serial}


def test_the_certificates_page_names_the_ca_the_crl_and_ocsp(bob: Any, certs: Any, settings: Any) -> None:
    body = _client(bob).get(CERTS).content.decode()
    ca = certs["active"].issuer
    assert f"{settings.ROOST_PUBLIC_URL}/pki/crl/{ca.pk}.crl" in body
    assert f"{settings.ROOST_PUBLIC_URL}/pki/ca/{ca.pk}.pem" in body
    assert f"{settings.ROOST_PUBLIC_URL}/pki/ocsp" in body and f"{settings.ROOST_PUBLIC_URL}/pki/ca/root.pem" in body


def test_an_operator_revokes_from_the_certificates_page(acme: Any, django_user_model: Any, certs: Any) -> None:
    client = _client(_member(acme, django_user_model, "olga", Role.OPERATOR))
    response = client.post(f"{CERTS}{certs['active'].serial}/revoke/", {"reason": "keyCompromise", "status": "active"})
    assert response.status_code == 302 and response["Location"] == CERTS + "?status=active"
    certs["active"].refresh_from_db()
    assert (certs["active"].status, certs["active"].revocation_reason) == (CertificateStatus.REVOKED, "keyCompromise")


def test_another_tenants_certificate_cannot_be_revoked_here(alice: Any, certs: Any) -> None:
    assert _client(alice).post(f"{CERTS}{certs['foreign'].serial}/revoke/", {"reason": "superseded"}).status_code == 404
    certs["foreign"].refresh_from_db()
    assert certs["foreign"].status == CertificateStatus.ACTIVE


# API keys ---------------------------------------------------------------------------------------


def test_creating_an_api_key_shows_the_secret_once(alice: Any, acme: Any) -> None:
    client = _client(alice)
    response = client.post(KEYS, {"name": "factory", "role": "operator", "expires_days": "30"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = response.context["secret"]
    assert secret in response.content.decode()
    api_key = check_key(secret)
    assert api_key is not None and (api_key.name, api_key.role, api_key.tenant) == ("factory", "operator", acme)
    assert api_key.created_by == "alice"
    assert secret not in client.get(KEYS).content.decode()  # the list never shows it again


def test_a_bad_api_key_form_creates_nothing(alice: Any) -> None:
    response = _client(alice).post(KEYS, {"name": "x", "role": "owner", "expires_days": "0"})
    assert response.status_code == 200
    assert {"role", "expires_days"} <= set(response.context["form"].errors)
    assert not ApiKey.objects.exists()


def test_revoking_an_api_key(alice: Any, acme: Any) -> None:
    created = create_api_key(acme, role="viewer", name="old")
    response = _client(alice).post(f"{KEYS}{created.api_key.prefix}/revoke/", follow=True)
    assert "Revoked old" in response.content.decode()
    assert check_key(created.key) is None
    assert AuditEvent.objects.filter(action="api_key.revoke", actor_label="alice").exists()


def test_another_tenants_key_cannot_be_revoked_here(alice: Any, globex: Any) -> None:
    created = create_api_key(globex, role="viewer")
    assert _client(alice).post(f"{KEYS}{created.api_key.prefix}/revoke/").status_code == 404
    assert check_key(created.key) is not None


def test_api_keys_and_members_are_not_in_the_menu_below_admin(bob: Any, alice: Any) -> None:
    viewer = _client(bob).get("/portal/t/acme/").content.decode()
    assert KEYS not in viewer and MEMBERS not in viewer and CERTS in viewer
    owner = _client(alice).get("/portal/t/acme/").content.decode()
    assert KEYS in owner and MEMBERS in owner


# Members ----------------------------------------------------------------------------------------


def test_an_admin_adds_an_existing_user_by_name_or_email(acme: Any, alice: Any, django_user_model: Any) -> None:
    django_user_model.objects.create_user("dana", email="Dana@Example.com", password="x-password-1")
    django_user_model.objects.create_user("eve", password="x-password-1")
    client = _client(alice)
    assert client.post(MEMBERS, {"user": "dana@example.com", "role": "operator"}).status_code == 302
    assert client.post(MEMBERS, {"user": "eve", "role": "viewer"}).status_code == 302
    roles = dict(Membership.objects.filter(tenant=acme).values_list("user__username", "role"))
    assert roles == {"alice": "owner", "dana": "operator", "eve": "viewer"}
    assert AuditEvent.objects.filter(action="membership.create", actor_label="alice").count() == 2


@pytest.mark.parametrize(("who", "message"), [
    ("nobody", "No user &#x27;nobody&#x27;"),
    ("bob", "already a member"),
])
def test_adding_an_unknown_user_or_a_member_again_is_refused_at_the_field(
        alice: Any, bob: Any, who: str, message: str) -> None:
    response = _client(alice).post(MEMBERS, {"user": who, "role": "viewer"})
    assert response.status_code == 200 and message in str(response.context["form"].errors["user"])
    assert Membership.objects.count() == 2


def test_an_admin_cannot_grant_a_role_above_their_own(acme: Any, django_user_model: Any) -> None:
    admin = _member(acme, django_user_model, "adam", Role.ADMIN)
    django_user_model.objects.create_user("dana", password="x-password-1")
    response = _client(admin).post(MEMBERS, {"user": "dana", "role": "owner"})
    assert response.status_code == 200 and "cannot grant the owner role" in str(response.context["form"].errors)
    assert not Membership.objects.filter(user__username="dana").exists()


def test_changing_a_role(alice: Any, bob: Any) -> None:
    response = _client(alice).post(f"{MEMBERS}bob/role/", {"role": "operator"}, follow=True)
    assert "bob is now operator" in response.content.decode()
    assert Membership.objects.get(user=bob).role == Role.OPERATOR


def test_the_last_owner_keeps_their_role(alice: Any) -> None:
    response = _client(alice).post(f"{MEMBERS}alice/role/", {"role": "viewer"}, follow=True)
    assert "last owner" in response.content.decode()
    assert Membership.objects.get(user=alice).role == Role.OWNER


def test_removing_a_member_asks_first_then_goes_through_the_registry(alice: Any, bob: Any) -> None:
    client = _client(alice)
    page = client.get(f"{MEMBERS}bob/remove/")
    assert page.status_code == 200 and "Remove bob from acme?" in page.content.decode()
    assert Membership.objects.filter(user=bob).exists()
    response = client.post(f"{MEMBERS}bob/remove/")
    assert response.status_code == 302 and not Membership.objects.filter(user=bob).exists()
    assert AuditEvent.objects.filter(action="membership.delete", actor_label="alice").exists()
    assert _client(bob).get("/portal/t/acme/").status_code == 404


def test_an_admin_cannot_remove_an_owner(acme: Any, alice: Any, django_user_model: Any) -> None:
    admin = _member(acme, django_user_model, "adam", Role.ADMIN)
    response = _client(admin).post(f"{MEMBERS}alice/remove/", follow=True)
    assert "cannot change a member who is owner" in response.content.decode()
    assert Membership.objects.filter(user=alice).exists()


def test_a_member_of_another_tenant_is_not_found_here(alice: Any, charlie: Any) -> None:
    assert _client(alice).post(f"{MEMBERS}charlie/role/", {"role": "viewer"}).status_code == 404


def test_the_api_keys_page_links_its_next_page(alice: Any, acme: Any) -> None:
    for n in range(30):
        create_api_key(acme, role="viewer", name=f"key-{n}")
    body = _client(alice).get(KEYS).content.decode()
    assert 'rel="next"' in body and "?page=2" in body
