from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from broker.integration.models import RetainedMessage
from devices.models import AuditEvent, ChangeEvent
from devices.services import create_device

pytestmark = pytest.mark.django_db


@pytest.fixture
def retained(acme):
    device = create_device(acme, "sensor-1")
    now = datetime.now(UTC)
    rows = [
        RetainedMessage.objects.create(tenant=acme, topic="devices/sensor-1/state", payload=b'{"on": true, "t": 21.5}',
                                       publisher=device, publisher_name="sensor-1", updated=now),
        RetainedMessage.objects.create(tenant=acme, topic="devices/sensor-1/name", payload=b"kitchen",
                                       publisher=device, publisher_name="sensor-1", updated=now),
        RetainedMessage.objects.create(tenant=acme, topic="devices/sensor-1/raw", payload=b"\x00\x01\xff",
                                       publisher=device, publisher_name="sensor-1", updated=now),
    ]
    return device, rows


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_payloads_render_as_json_text_or_hex(retained) -> None:
    _, (state, name, raw) = retained
    kind, text = state.rendered_payload()
    assert kind == "json" and '"t": 21.5' in text and "\n" in text
    assert name.rendered_payload() == ("text", "kitchen")
    kind, text = raw.rendered_payload()
    assert kind == "hex" and "00 01 ff" in text


def test_a_member_sees_every_retained_topic_a_device_last_published(alice, retained) -> None:
    response = _login(alice).get("/portal/t/acme/devices/sensor-1/retained/")
    assert response.status_code == 200
    body = response.content.decode()
    for topic in ("devices/sensor-1/state", "devices/sensor-1/name", "devices/sensor-1/raw"):
        assert topic in body
    assert "&quot;t&quot;: 21.5" in body


def test_another_tenants_user_gets_not_found(charlie, retained) -> None:
    client = _login(charlie)
    assert client.get("/portal/t/acme/devices/sensor-1/retained/").status_code == 404
    assert client.get("/portal/t/acme/topics/").status_code == 404


def test_an_anonymous_visitor_is_sent_to_log_in(retained) -> None:
    response = Client().get("/portal/t/acme/topics/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_topic_tree_nests_levels_and_counts_topics(alice, retained) -> None:
    response = _login(alice).get("/portal/t/acme/topics/")
    assert response.status_code == 200
    nodes = response.context["nodes"]
    assert [(n["level"], n["depth"], n["count"]) for n in nodes[:2]] == [("devices", 0, 3), ("sensor-1", 1, 3)]
    assert {n["topic"] for n in nodes if n["topic"]} == {
        "devices/sensor-1/state", "devices/sensor-1/name", "devices/sensor-1/raw"}


def test_clearing_a_retained_topic_goes_through_the_outbox_and_is_audited(alice, retained) -> None:
    start = ChangeEvent.objects.order_by("-id").first().id
    response = _login(alice).post("/portal/t/acme/retained/clear", {"topic": "devices/sensor-1/name"})
    assert response.status_code == 302
    event = ChangeEvent.objects.get(id__gt=start, kind="retained")
    assert event.op == "clear" and event.payload == {"topic": "devices/sensor-1/name", "tenant": "acme"}
    audit = AuditEvent.objects.get(action="retained.clear")
    assert audit.actor_user == alice and audit.before["topic"] == "devices/sensor-1/name"


def test_a_viewer_cannot_clear_retained_state(bob, retained) -> None:
    response = _login(bob).post("/portal/t/acme/retained/clear", {"topic": "devices/sensor-1/name"})
    assert response.status_code == 404
    assert not ChangeEvent.objects.filter(kind="retained").exists()
