"""The live pages as the server renders them: who may open the explorer, what it offers them,
what the tree starts with, and the hooks the live script finds on every tenant page."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from broker.integration.models import RetainedMessage
from devices.models import Membership, Role
from devices.services import create_device

pytestmark = pytest.mark.django_db

EXPLORER = "/portal/t/acme/explorer/"


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _seed(response: Any) -> dict[str, Any]:
    html = response.content.decode()
    start = html.index('<script id="explorer-seed" type="application/json">') + len(
        '<script id="explorer-seed" type="application/json">')
    return json.loads(html[start:html.index("</script>", start)])


def test_a_viewer_opens_the_explorer_without_the_right_to_publish(bob: Any) -> None:
    response = _client(bob).get(EXPLORER)
    assert response.status_code == 200
    assert b'data-can-publish="false"' in response.content
    assert b"the broker refuses your messages" in response.content
    assert b'id="clear-retained"' not in response.content


def test_an_operator_may_publish_and_clear_from_the_explorer(acme: Any, django_user_model: Any) -> None:
    oscar = django_user_model.objects.create_user("oscar", password="x-password-1")
    Membership.objects.create(user=oscar, tenant=acme, role=Role.OPERATOR)
    response = _client(oscar).get(EXPLORER)
    assert b'data-can-publish="true"' in response.content
    assert b'id="clear-retained"' in response.content


def test_a_member_of_another_tenant_gets_404_from_the_explorer(charlie: Any) -> None:
    assert _client(charlie).get(EXPLORER).status_code == 404


def test_an_anonymous_visitor_is_sent_to_sign_in_from_the_explorer(acme: Any) -> None:
    response = Client().get(EXPLORER)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_tree_starts_with_the_tenants_retained_topics_and_devices_only(
        acme: Any, globex: Any, bob: Any) -> None:
    create_device(acme, "boiler")
    create_device(globex, "secret-pump")
    now = timezone.now()
    RetainedMessage.objects.create(tenant=acme, topic="site/name", payload=b"north", updated=now)
    RetainedMessage.objects.create(tenant=globex, topic="globex/only", payload=b"x", updated=now)
    seed = _seed(_client(bob).get(EXPLORER))
    assert seed["topics"] == ["site/name"]
    assert "devices/boiler" in seed["branches"]
    assert "devices/secret-pump" not in seed["branches"]


def test_a_deep_link_names_the_topic_to_open(bob: Any) -> None:
    response = _client(bob).get(EXPLORER, {"topic": "devices/boiler/temp"})
    assert b'data-topic="devices/boiler/temp"' in response.content


def test_every_tenant_page_carries_the_connection_indicator_for_its_tenant(bob: Any) -> None:
    response = _client(bob).get("/portal/t/acme/")
    assert b'id="mqtt-status"' in response.content
    assert b'data-tenant="acme"' in response.content
    assert b"frontend/dist/live.js" in response.content


def test_a_page_without_a_tenant_opens_no_live_connection(bob: Any) -> None:
    response = Client().get("/accounts/login/")
    assert b'id="mqtt-status"' not in response.content
    assert b"frontend/dist/live.js" not in response.content


def test_the_device_list_and_page_mark_where_presence_goes(acme: Any, bob: Any) -> None:
    create_device(acme, "boiler")
    client = _client(bob)
    assert b'data-presence="boiler"' in client.get("/portal/t/acme/devices/").content
    page = client.get("/portal/t/acme/devices/boiler/").content
    assert b'id="device-live" data-device="boiler"' in page
    assert b'data-presence="boiler"' in page
