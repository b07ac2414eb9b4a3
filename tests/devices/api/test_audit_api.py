"""`audit-events/`: the tenant's trail, newest first, filtered by actor, action, object and time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from devices.audit import Actor
from devices.models import AuditEvent
from devices.services import create_device, create_group, delete_device

URL = "/api/v1/tenants/acme/audit-events/"
pytestmark = pytest.mark.django_db


def actions(client: Any, query: str = "") -> list[str]:
    response = client.get(URL + query)
    assert response.status_code == 200, response.content
    return [e["action"] for e in response.json()["results"]]


@pytest.fixture
def trail(acme: Any, globex: Any, users: dict[str, Any]) -> None:
    alice = Actor.for_user(users["owner"])
    create_group(acme, "line-1", actor=alice)
    device = create_device(acme, "d-1", actor=Actor.api_key("api-key:factory"))
    delete_device(device, actor=alice)
    create_device(globex, "theirs", actor=Actor.system())


def test_the_trail_is_newest_first_and_shows_who_did_what(callers: dict[str, Any], trail: None) -> None:
    events = callers["admin"].get(URL).json()["results"]
    mine = [(e["action"], e["actor"], e["target"]) for e in events if e["action"].startswith(("device", "group"))]
    assert mine == [("device.delete", "olivia", "acme/d-1"), ("device.create", "api-key:factory", "acme/d-1"),
                    ("group.create", "olivia", "acme/line-1")]
    assert events[0]["before"]["name"] == "d-1"


def test_another_tenants_events_are_not_listed(callers: dict[str, Any], trail: None) -> None:
    assert all(e["target"] != "globex/theirs" for e in callers["staff"].get(URL).json()["results"])


def test_the_trail_filters_by_actor_action_and_object(callers: dict[str, Any], trail: None) -> None:
    admin = callers["admin"]
    assert actions(admin, "?actor=api-key:factory") == ["device.create"]
    assert actions(admin, "?action=group.create") == ["group.create"]
    assert actions(admin, "?action_prefix=device.") == ["device.delete", "device.create"]
    assert actions(admin, "?target_type=device&target=acme/d-1") == ["device.delete", "device.create"]
    assert actions(admin, "?actor_kind=api_key") == ["device.create"]


def test_the_trail_filters_by_time(callers: dict[str, Any], trail: None) -> None:
    old = AuditEvent.objects.get(action="group.create")
    AuditEvent.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=3))
    cutoff = (timezone.now() - timedelta(days=1)).isoformat()
    assert "group.create" not in actions(callers["admin"], f"?since={cutoff.replace('+', '%2B')}")
    assert actions(callers["admin"], f"?until={cutoff.replace('+', '%2B')}") == ["group.create"]


def test_a_bad_time_is_a_400_naming_the_parameter(callers: dict[str, Any]) -> None:
    response = callers["admin"].get(URL, {"since": "yesterday"})
    assert (response.status_code, response.json()["field"]) == (400, "since")


def test_a_time_with_any_offset_python_accepts_is_moved_to_utc_before_the_query(
        callers: dict[str, Any], trail: None) -> None:
    # PostgreSQL refuses offsets beyond ±15:59 that Python parses; the filter converts first.
    assert "group.create" in actions(callers["admin"], "?since=0462-05-30T05:07:46-17:47")
    assert actions(callers["admin"], "?until=1352-06-01T19:51:25.973-23:59") == []


@pytest.mark.parametrize("query", [{"since": "0001-01-01T00:00:00+05:00"}, {"until": "9999-12-31T23:00:00-05:00"}])
def test_a_time_outside_the_range_once_in_utc_is_a_400(callers: dict[str, Any], query: dict[str, str]) -> None:
    response = callers["admin"].get(URL, query)
    assert (response.status_code, response.json()["field"]) == (400, next(iter(query)))


def test_one_event_can_be_fetched_by_id(callers: dict[str, Any], trail: None) -> None:
    event = AuditEvent.objects.get(action="device.create", tenant__slug="acme")
    assert callers["admin"].get(f"{URL}{event.pk}/").json()["actor"] == "api-key:factory"
    other = AuditEvent.objects.filter(tenant__slug="globex").latest("id")
    assert callers["admin"].get(f"{URL}{other.pk}/").status_code == 404
