"""Who may open and submit every portal page: the permission matrix.

Anonymous visitors are sent to sign in; a role below the page's answers 403 (the retained
clear keeps its earlier 404); a member of another tenant gets 404, as if the tenant did not
exist; platform staff see every tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from acl.models import AclRule
from broker.integration.models import RetainedMessage
from devices.apikeys import create_api_key
from devices.imports import claim_job, run_job, submit_import
from devices.models import Membership, Role
from devices.services import create_device
from frontend import bundles
from pki.enrollment import create_token
from pki.issuance import bundle_for, issue_certificate
from tests.devices.import_support import import_data_dir  # noqa: F401 - job files in the test's own folder

pytestmark = pytest.mark.django_db

V, OP, AD = Role.VIEWER, Role.OPERATOR, Role.ADMIN
DEVICE = "/portal/t/acme/devices/sensor-1"
# (method, path, the lowest role that may do it). {serial}, {token}, {prefix} are filled in per test.
PAGES = [
    ("GET", "/portal/t/acme/", V),
    ("GET", "/portal/t/acme/devices/", V),
    ("GET", "/portal/t/acme/devices/?online=yes&sort=-last_seen", V),
    ("GET", "/portal/t/acme/devices/-/new/", OP),
    ("POST", "/portal/t/acme/devices/-/new/", OP),
    ("POST", "/portal/t/acme/devices/-/bulk/", OP),
    ("GET", f"{DEVICE}/", V),
    ("POST", f"{DEVICE}/", OP),
    ("POST", f"{DEVICE}/kick/", OP),
    ("GET", f"{DEVICE}/delete/", OP),
    ("POST", f"{DEVICE}/delete/", OP),
    ("POST", f"{DEVICE}/certificates/", OP),
    ("POST", f"{DEVICE}/certificates/{{serial}}/revoke/", OP),
    ("GET", f"{DEVICE}/certificates/{{serial}}.pem", V),
    ("GET", f"{DEVICE}/issued/{{token}}/", OP),
    ("POST", f"{DEVICE}/issued/{{token}}/zip/", OP),
    ("GET", f"{DEVICE}/retained/", V),
    ("GET", "/portal/t/acme/topics/", V),
    ("GET", "/portal/t/acme/retained/?topic=devices/sensor-1/state", V),
    ("POST", "/portal/t/acme/retained/clear", OP),
    ("GET", "/portal/t/acme/certificates/", V),
    ("GET", "/portal/t/acme/certificates/?status=expiring&q=sensor", V),
    ("POST", "/portal/t/acme/certificates/{serial}/revoke/", OP),
    ("GET", "/portal/t/acme/api-keys/", AD),
    ("POST", "/portal/t/acme/api-keys/", AD),
    ("POST", "/portal/t/acme/api-keys/{prefix}/revoke/", AD),
    ("GET", "/portal/t/acme/members/", AD),
    ("POST", "/portal/t/acme/members/", AD),
    ("POST", "/portal/t/acme/members/vera/role/", AD),
    ("GET", "/portal/t/acme/members/vera/remove/", AD),
    ("POST", "/portal/t/acme/members/vera/remove/", AD),
    ("GET", "/portal/t/acme/rules/", V),
    ("GET", "/portal/t/acme/rules/explain/?device=sensor-1&action=subscribe&topic=devices/sensor-1/x", V),
    ("GET", "/portal/t/acme/rules/new/", AD),
    ("POST", "/portal/t/acme/rules/new/", AD),
    ("GET", "/portal/t/acme/rules/{rule}/", AD),
    ("POST", "/portal/t/acme/rules/{rule}/", AD),
    ("GET", "/portal/t/acme/rules/{rule}/delete/", AD),
    ("POST", "/portal/t/acme/rules/{rule}/delete/", AD),
    ("GET", "/portal/t/acme/enrollment-tokens/", AD),
    ("POST", "/portal/t/acme/enrollment-tokens/", AD),
    ("POST", "/portal/t/acme/enrollment-tokens/{token_prefix}/revoke/", AD),
    ("GET", "/portal/t/acme/audit/", AD),
    ("GET", "/portal/t/acme/audit/?action=device.create&since=2020-01-01T00:00", AD),
    ("GET", "/portal/t/acme/audit/export.csv?target_type=device", AD),
    ("GET", "/portal/t/acme/devices/-/import/", OP),
    ("POST", "/portal/t/acme/devices/-/import/", OP),
    ("GET", "/portal/t/acme/devices/-/import/{job}/", OP),
    ("GET", "/portal/t/acme/devices/-/import/{job}/progress/", OP),
    ("GET", "/portal/t/acme/devices/-/import/{job}/bundle/", OP),
]
RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3, Role.OWNER: 4}
IDS = [f"{method} {path}" for method, path, _ in PAGES]


@pytest.fixture(autouse=True)
def _no_broker(settings: Any) -> None:
    settings.ROOST_BROKER_METRICS_PORT = 0  # the rule pages' impact preview: no broker runs here


@pytest.fixture
def fleet(acme: Any, alice: Any, django_user_model: Any) -> dict[str, str]:
    device = create_device(acme, "sensor-1")
    issued = bundle_for(issue_certificate(device, ec.generate_private_key(ec.SECP256R1()).public_key()))
    RetainedMessage.objects.create(tenant=acme, topic="devices/sensor-1/state", payload=b"on",
                                   publisher=device, publisher_name="sensor-1", updated=datetime.now(UTC))
    vera = django_user_model.objects.create_user("vera", password="x-password-1")
    Membership.objects.create(user=vera, tenant=acme, role=Role.VIEWER)
    job = submit_import(acme, b"name\nimported-1\n", issue_certs=True)
    run_job(claim_job(job.pk))  # type: ignore[arg-type]
    return {"serial": issued.certificate.serial, "job": str(job.pk), "token": bundles.keep(alice, device, issued),
            "prefix": create_api_key(acme, role="viewer", name="ci").api_key.prefix,
            "token_prefix": create_token(acme, label="line").token.prefix,
            "rule": str(AclRule.objects.filter(tenant=acme).order_by("id").values_list("id", flat=True)[0])}


@pytest.fixture
def member(acme: Any, django_user_model: Any) -> Any:
    """member(role) -> a signed-in client of a new user with that role in acme."""
    def make(role: str) -> Client:
        user = django_user_model.objects.create_user(f"{role}-user", password="x-password-1")
        Membership.objects.create(user=user, tenant=acme, role=role)
        client = Client()
        client.force_login(user)
        return client

    return make


def _send(client: Client, method: str, path: str, fleet: dict[str, str]) -> Any:
    url = path.format(**fleet)
    return client.get(url) if method == "GET" else client.post(url, {})


@pytest.mark.parametrize(("method", "path", "needed"), PAGES, ids=IDS)
def test_an_anonymous_visitor_is_sent_to_sign_in(method: str, path: str, needed: str, fleet: Any) -> None:
    response = _send(Client(), method, path, fleet)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR, Role.ADMIN, Role.OWNER])
@pytest.mark.parametrize(("method", "path", "needed"), PAGES, ids=IDS)
def test_a_member_may_do_what_their_role_allows_and_is_refused_the_rest(
        method: str, path: str, needed: str, role: str, fleet: Any, member: Any) -> None:
    response = _send(member(role), method, path, fleet)
    if RANK[Role(role)] >= RANK[Role(needed)]:
        assert response.status_code in (200, 302), response.content[:300]
        assert not response.get("Location", "").startswith("/accounts/login/")
    elif path.endswith("/retained/clear"):
        assert response.status_code == 404
    else:
        assert response.status_code == 403


@pytest.mark.parametrize(("method", "path", "needed"), PAGES, ids=IDS)
def test_a_member_of_another_tenant_gets_not_found(method: str, path: str, needed: str, fleet: Any,
                                                   charlie: Any) -> None:
    client = Client()
    client.force_login(charlie)
    assert _send(client, method, path, fleet).status_code == 404


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
@pytest.mark.parametrize(("method", "path", "needed"), PAGES, ids=IDS)
def test_platform_staff_may_do_everything_in_every_tenant(method: str, path: str, needed: str, flag: str,
                                                          fleet: Any, django_user_model: Any) -> None:
    staff = django_user_model.objects.create_user("staffer", password="x-password-1", **{flag: True})
    client = Client()
    client.force_login(staff)
    response = _send(client, method, path, fleet)
    assert response.status_code in (200, 302), response.content[:300]
    assert not response.get("Location", "").startswith("/accounts/login/")


def test_an_unknown_tenant_is_not_found_even_for_staff(admin_client: Client) -> None:
    assert admin_client.get("/portal/t/nowhere/").status_code == 404


def test_a_viewer_sees_the_device_page_without_any_form_that_changes_it(bob: Any, fleet: Any) -> None:
    client = Client()
    client.force_login(bob)
    body = client.get(f"{DEVICE}/").content.decode()
    assert "sensor-1" in body
    for action in ("kick/", "delete/", "/revoke/", 'id="edit-device"', f'action="{DEVICE}/certificates/"'):
        assert action not in body


def test_a_viewer_sees_no_create_button_nor_bulk_actions(bob: Any, fleet: Any) -> None:
    client = Client()
    client.force_login(bob)
    body = client.get("/portal/t/acme/devices/").content.decode()
    assert "sensor-1" in body
    assert "/devices/-/new/" not in body and 'id="bulk-form"' not in body and 'name="pk"' not in body


def test_every_page_names_the_tenant_the_user_and_their_role(alice: Any, fleet: Any) -> None:
    client = Client()
    client.force_login(alice)
    body = client.get("/portal/t/acme/devices/").content.decode()
    assert "<strong>Acme</strong> <code>acme</code>" in body
    assert "Signed in as <strong>alice</strong>" in body
    assert '<strong id="my-role">owner</strong>' in body


def test_staff_without_a_membership_are_named_platform_staff(admin_client: Client, fleet: Any) -> None:
    body = admin_client.get("/portal/t/acme/").content.decode()
    assert '<strong id="my-role">platform staff</strong>' in body


def test_the_tenant_switcher_lists_every_tenant_of_a_member_of_several(alice: Any, globex: Any) -> None:
    Membership.objects.create(user=alice, tenant=globex, role=Role.VIEWER)
    client = Client()
    client.force_login(alice)
    body = client.get("/portal/t/acme/").content.decode()
    assert 'id="tenant-switcher"' in body
    assert 'href="/portal/t/globex/"' in body and 'href="/portal/t/acme/"' in body


def test_a_member_of_one_tenant_gets_no_switcher(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    assert 'id="tenant-switcher"' not in client.get("/portal/t/acme/").content.decode()


def test_the_root_leads_to_the_portal_and_the_portal_to_sign_in() -> None:
    client = Client()
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/portal/"
    response = client.get("/portal/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/portal/"


def test_the_portal_opens_the_only_tenant_of_a_member(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    response = client.get("/portal/")
    assert response.status_code == 302 and response["Location"] == "/portal/t/acme/"


def test_the_portal_lists_the_tenants_of_a_member_of_several(alice: Any, globex: Any) -> None:
    Membership.objects.create(user=alice, tenant=globex, role=Role.VIEWER)
    client = Client()
    client.force_login(alice)
    response = client.get("/portal/")
    assert response.status_code == 200
    assert [t.slug for t in response.context["tenants"]] == ["acme", "globex"]


def test_a_user_in_no_tenant_is_told_so(django_user_model: Any, acme: Any) -> None:
    lonely = django_user_model.objects.create_user("lonely", password="x-password-1")
    client = Client()
    client.force_login(lonely)
    response = client.get("/portal/")
    assert response.status_code == 200 and "not a member of any tenant" in response.content.decode()
    assert client.get("/portal/t/acme/").status_code == 404


def test_a_refusal_says_which_role_is_needed_in_the_portal_layout(bob: Any, fleet: Any) -> None:
    client = Client()
    client.force_login(bob)
    response = client.get("/portal/t/acme/devices/-/new/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "This needs the operator role in acme; you are viewer." in body and "portal.css" in body
