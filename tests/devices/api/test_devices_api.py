"""`devices/`: create, show, change, delete, kick; the connection log and retained messages."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from broker.integration.models import ConnectionEvent, RetainedMessage
from devices.models import AuditEvent, ChangeEvent, Device, Role
from devices.services import create_device, create_group

URL = "/api/v1/tenants/acme/devices/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, Role.OPERATOR, name="factory"))


def test_an_operator_creates_a_device_with_its_fields_and_location(acme: Any, operator: Any) -> None:
    create_group(acme, "line-3")
    response = operator.post(URL, {"name": "sensor-1.line-3", "display_name": "S1", "group": "line-3",
                                   "tags": ["pilot"], "attributes": {"floor": 3}})
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("name", "display_name", "group", "tags", "attributes", "enabled")} == {
        "name": "sensor-1.line-3", "display_name": "S1", "group": "line-3", "tags": ["pilot"],
        "attributes": {"floor": 3}, "enabled": True}
    assert body["presence"] == {"online": False, "last_seen": None, "address": None, "protocol_version": None,
                                "certificate_serial": None}
    assert response["Location"].endswith("/api/v1/tenants/acme/devices/sensor-1.line-3/")
    assert operator.get(response["Location"]).json()["name"] == "sensor-1.line-3"


def test_a_device_made_with_a_key_is_audited_with_the_keys_name(acme: Any, operator: Any) -> None:
    operator.post(URL, {"name": "sensor-1"})
    event = AuditEvent.objects.get(action="device.create")
    assert (event.actor_label, event.actor_kind, event.tenant) == ("api-key:factory", "api_key", acme)


def test_a_bad_device_name_is_a_400_naming_the_field(operator: Any) -> None:
    response = operator.post(URL, {"name": "bad name/with#wildcards"})
    assert response.status_code == 400
    assert response.json()["field"] == "name"
    assert "letters, digits" in response.json()["message"]


def test_a_taken_device_name_is_a_400_naming_the_field(acme: Any, operator: Any) -> None:
    create_device(acme, "sensor-1")
    response = operator.post(URL, {"name": "sensor-1"})
    assert response.status_code == 400
    assert (response.json()["field"], "already exists" in response.json()["message"]) == ("name", True)


def test_the_same_name_in_another_tenant_is_fine(acme: Any, globex: Any, operator: Any) -> None:
    create_device(globex, "sensor-1")
    assert operator.post(URL, {"name": "sensor-1"}).status_code == 201


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "s1", "group": "nowhere"}, "group"),
    ({"name": "s1", "attributes": ["not", "an", "object"]}, "attributes"),
    ({"name": "s1", "tags": "pilot"}, "tags"),
    ({"name": "s1", "tags": [1, {"x": 1}]}, "tags"),
    ({"name": "s1", "enabled": "perhaps"}, "enabled"),
    ({"name": "s1", "display_name": "x" * 201}, "display_name"),
    ({}, "name"),
])
def test_a_bad_field_is_a_400_naming_it(operator: Any, body: dict[str, Any], field: str) -> None:
    response = operator.post(URL, body)
    assert response.status_code == 400, response.content
    assert response.json()["field"].startswith(field)
    assert not Device.objects.filter(name="s1").exists()


def test_a_body_that_is_not_an_object_is_a_400(operator: Any) -> None:
    response = operator.post(URL, ["sensor-1"])
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_an_operator_changes_only_the_fields_sent(acme: Any, operator: Any) -> None:
    create_device(acme, "sensor-1", display_name="old", attributes={"floor": 1}, tags=["a"])
    create_group(acme, "line-4")
    response = operator.patch(f"{URL}sensor-1/", {"group": "line-4", "attributes": {"floor": 2}})
    assert response.status_code == 200, response.content
    device = Device.objects.get(name="sensor-1")
    assert (device.display_name, device.group.name, device.attributes, device.tags) == (
        "old", "line-4", {"floor": 2}, ["a"])
    assert response.json()["group"] == "line-4"


def test_a_device_can_leave_its_group(acme: Any, operator: Any) -> None:
    create_device(acme, "sensor-1", group=create_group(acme, "line-4"))
    assert operator.patch(f"{URL}sensor-1/", {"group": None}).json()["group"] is None


def test_disabling_a_device_is_audited_and_announced_to_the_broker(acme: Any, operator: Any) -> None:
    create_device(acme, "sensor-1")
    assert operator.patch(f"{URL}sensor-1/", {"enabled": False}).json()["enabled"] is False
    event = AuditEvent.objects.get(action="device.disable")
    assert event.actor_label == "api-key:factory"
    change = ChangeEvent.objects.filter(kind="device", op="updated").latest("id")
    assert change.payload == {"name": "sensor-1", "enabled": False}


def test_a_device_name_cannot_change(acme: Any, operator: Any) -> None:
    create_device(acme, "sensor-1")
    response = operator.patch(f"{URL}sensor-1/", {"name": "sensor-2"})
    assert (response.status_code, response.json()["field"], response.json()["code"]) == (400, "name", "immutable")
    assert operator.patch(f"{URL}sensor-1/", {"name": "sensor-1", "display_name": "x"}).status_code == 200


def test_put_is_not_offered(acme: Any, operator: Any) -> None:
    create_device(acme, "sensor-1")
    assert operator.put(f"{URL}sensor-1/", {"display_name": "x"}).status_code == 405


def test_an_operator_deletes_a_device_and_the_broker_hears_of_it(acme: Any, operator: Any) -> None:
    create_device(acme, "sensor-1")
    assert operator.delete(f"{URL}sensor-1/").status_code == 204
    assert not Device.objects.filter(name="sensor-1").exists()
    assert ChangeEvent.objects.filter(kind="device", op="deleted").exists()
    assert AuditEvent.objects.get(action="device.delete").actor_label == "api-key:factory"
    assert operator.get(f"{URL}sensor-1/").status_code == 404


def test_an_unknown_device_is_a_404_in_the_error_shape(operator: Any) -> None:
    response = operator.get(f"{URL}nope/")
    assert (response.status_code, response.json()["code"]) == (404, "device_not_found")


def test_another_tenants_device_is_a_404(globex: Any, operator: Any) -> None:
    create_device(globex, "theirs")
    assert operator.get(f"{URL}theirs/").status_code == 404
    assert operator.patch(f"{URL}theirs/", {"enabled": False}).status_code == 404
    assert Device.objects.get(name="theirs").enabled


def test_device_names_with_dots_and_colons_work_in_paths(acme: Any, operator: Any) -> None:
    create_device(acme, "a.b:c-1")
    assert operator.get(f"{URL}a.b:c-1").json()["name"] == "a.b:c-1"
    assert operator.post(f"{URL}a.b:c-1/kick").status_code == 202


# Kick ----------------------------------------------------------------------------------------


def test_kick_hands_the_disconnect_to_the_broker_through_the_outbox(acme: Any, operator: Any) -> None:
    device = create_device(acme, "sensor-1")
    Device.objects.filter(pk=device.pk).update(online=True)
    response = operator.post(f"{URL}sensor-1/kick")
    assert (response.status_code, response.json()) == (202, {"kicked": True, "online": True})
    change = ChangeEvent.objects.filter(kind="device", op="kick").get()
    assert change.object_id == str(device.pk)
    assert AuditEvent.objects.get(action="device.kick").actor_label == "api-key:factory"


def test_kicking_an_offline_device_says_it_was_not_online(acme: Any, operator: Any) -> None:
    create_device(acme, "sensor-1")
    assert operator.post(f"{URL}sensor-1/kick/").json() == {"kicked": True, "online": False}


# Presence, connection log, retained -----------------------------------------------------------


def _connection(device: Device, event: str, at: Any, serial: str = "", **extra: Any) -> ConnectionEvent:
    return ConnectionEvent.objects.create(tenant=device.tenant, device=device, client_id=device.name, event=event,
                                          at=at, certificate_serial=serial, remote_address="10.0.0.9:50000",
                                          protocol_version=5, **extra)


def test_an_online_device_shows_the_serial_of_its_latest_connection(acme: Any, operator: Any) -> None:
    device = create_device(acme, "sensor-1")
    now = timezone.now()
    _connection(device, "connected", now - timedelta(hours=2), "0a01")
    _connection(device, "disconnected", now - timedelta(hours=1), "0a01")
    _connection(device, "connected", now - timedelta(minutes=1), "0b02")
    Device.objects.filter(pk=device.pk).update(online=True, last_seen=now, last_ip="10.0.0.9", protocol_version=5)
    presence = operator.get(f"{URL}sensor-1/").json()["presence"]
    assert presence["online"] is True
    assert (presence["certificate_serial"], presence["address"], presence["protocol_version"]) == ("0b02", "10.0.0.9", 5)
    assert operator.get(URL).json()["results"][0]["presence"]["certificate_serial"] == "0b02"


def test_an_offline_device_shows_no_live_serial(acme: Any, operator: Any) -> None:
    device = create_device(acme, "sensor-1")
    _connection(device, "connected", timezone.now(), "0a01")
    assert operator.get(f"{URL}sensor-1/").json()["presence"]["certificate_serial"] is None


def test_the_connection_log_lists_the_devices_events_newest_first(acme: Any, operator: Any) -> None:
    device, other = create_device(acme, "sensor-1"), create_device(acme, "sensor-2")
    now = timezone.now()
    _connection(device, "connected", now - timedelta(minutes=2), "0a01")
    _connection(device, "disconnected", now - timedelta(minutes=1), "0a01", reason="administrative action",
                reason_code=0x98)
    _connection(other, "connected", now, "0c03")
    body = operator.get(f"{URL}sensor-1/connections").json()
    assert [(e["event"], e["reason_code"]) for e in body["results"]] == [("disconnected", 0x98), ("connected", None)]
    assert body["results"][1]["certificate_serial"] == "0a01"
    only = operator.get(f"{URL}sensor-1/connections/?event=connected").json()["results"]
    assert [e["event"] for e in only] == ["connected"]


def test_the_connection_log_of_an_unknown_device_is_a_404(operator: Any) -> None:
    assert operator.get(f"{URL}nope/connections/").status_code == 404


def test_retained_shows_what_the_device_published_as_text_or_base64(acme: Any, operator: Any) -> None:
    device, other = create_device(acme, "sensor-1"), create_device(acme, "sensor-2")
    now = timezone.now()
    RetainedMessage.objects.create(tenant=acme, topic="devices/sensor-1/state", payload=b'{"on": true}', qos=1,
                                   publisher=device, publisher_name="sensor-1", updated=now)
    RetainedMessage.objects.create(tenant=acme, topic="devices/sensor-1/blob", payload=b"\xff\x00\x01", qos=0,
                                   publisher=device, publisher_name="sensor-1", updated=now)
    RetainedMessage.objects.create(tenant=acme, topic="devices/sensor-1/gone", payload=b"x", qos=0,
                                   publisher=device, updated=now, expires_at=now - timedelta(seconds=1))
    RetainedMessage.objects.create(tenant=acme, topic="devices/sensor-2/state", payload=b"other", qos=0,
                                   publisher=other, updated=now)
    results = operator.get(f"{URL}sensor-1/retained").json()["results"]
    assert [(r["topic"], r["payload"], r["encoding"], r["qos"], r["size"]) for r in results] == [
        ("devices/sensor-1/blob", base64.b64encode(b"\xff\x00\x01").decode(), "base64", 0, 3),
        ("devices/sensor-1/state", '{"on": true}', "utf-8", 1, 12),
    ]
