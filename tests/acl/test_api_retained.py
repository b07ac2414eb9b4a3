"""`retained/?filter=…`: the retained rows the broker wrote, chosen by MQTT filter semantics (the
shared topic algebra, not SQL), paged by topic; `DELETE` asks the broker to clear them through
the outbox, audited, and answers how many the database held.

The rows are written here as the broker's write-behind writes them; the live clear against a
running broker is in tests/broker/integration/test_platform_api_acl.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from broker.integration.api.pagination import TopicPagination
from broker.integration.models import RetainedMessage
from devices.models import AuditEvent, ChangeEvent
from devices.services import create_device

pytestmark = pytest.mark.django_db
RETAINED = "/api/v1/tenants/acme/retained/"


def _retain(tenant: Any, topic: str, payload: bytes = b"1", *, device: Any = None, publisher: str = "",
            expires_in: float | None = None) -> RetainedMessage:
    expires = timezone.now() + timedelta(seconds=expires_in) if expires_in is not None else None
    return RetainedMessage.objects.create(tenant=tenant, topic=topic, payload=payload, qos=1, publisher=device,
                                          publisher_name=publisher or (device.name if device else ""),
                                          expires_at=expires, updated=timezone.now())


@pytest.fixture
def stored(acme: Any, globex: Any) -> None:
    sensor = create_device(acme, "sensor-1")
    _retain(acme, "devices/sensor-1", b"parent", device=sensor)
    _retain(acme, "devices/sensor-1/state", b'{"on": true}', device=sensor)
    _retain(acme, "devices/sensor-1/fw/version", b"1.2", device=sensor)
    _retain(acme, "devices/sensor-2/state", b"\xff\x00\x01", publisher="sensor-2")
    _retain(acme, "Devices/sensor-1/state", b"other case", publisher="svc-client")
    _retain(acme, "$roost/presence/sensor-1", b"online", publisher="roost")
    _retain(acme, "devices/sensor-1/gone", b"expired", device=sensor, expires_in=-1)
    _retain(globex, "devices/sensor-1/state", b"globex's")


@pytest.fixture
def viewer(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, "viewer"))


@pytest.fixture
def operator(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, "operator", name="cleaner"))


def _topics(client: Any, topic_filter: str | None, **params: Any) -> list[str]:
    query = {"filter": topic_filter, **params} if topic_filter is not None else params
    response = client.get(RETAINED, query)
    assert response.status_code == 200, response.content
    return [row["topic"] for row in response.json()["results"]]


def test_a_wildcard_filter_lists_the_matching_topics_in_order(viewer: Any, stored: None) -> None:
    assert _topics(viewer, "devices/+/state") == ["devices/sensor-1/state", "devices/sensor-2/state"]
    assert _topics(viewer, "devices/sensor-1/+/version") == ["devices/sensor-1/fw/version"]


def test_a_trailing_hash_matches_its_parent_level_too(viewer: Any, stored: None) -> None:
    assert _topics(viewer, "devices/sensor-1/#") == [
        "devices/sensor-1", "devices/sensor-1/fw/version", "devices/sensor-1/state"]


def test_topics_compare_case_sensitively_on_every_database(viewer: Any, stored: None) -> None:
    assert _topics(viewer, "Devices/#") == ["Devices/sensor-1/state"]
    assert "Devices/sensor-1/state" not in _topics(viewer, "devices/#")


def test_everything_but_dollar_topics_by_default_and_those_when_named(viewer: Any, stored: None) -> None:
    listed = _topics(viewer, None)
    assert "$roost/presence/sensor-1" not in listed and len(listed) == 5
    assert _topics(viewer, "$roost/#") == ["$roost/presence/sensor-1"]
    assert _topics(viewer, "+/presence/sensor-1") == []


def test_an_exact_topic_lists_that_topic_alone(viewer: Any, stored: None) -> None:
    assert _topics(viewer, "devices/sensor-1/state") == ["devices/sensor-1/state"]


def test_expired_messages_and_other_tenants_are_not_listed(viewer: Any, stored: None) -> None:
    assert "devices/sensor-1/gone" not in _topics(viewer, "#")
    body = viewer.get(RETAINED, {"filter": "devices/sensor-1/state"}).json()
    assert [row["payload"] for row in body["results"]] == ['{"on": true}']


def test_a_message_shows_its_payload_size_and_publishing_device(viewer: Any, stored: None) -> None:
    rows = {row["topic"]: row for row in viewer.get(RETAINED, {"filter": "devices/+/state"}).json()["results"]}
    text, binary = rows["devices/sensor-1/state"], rows["devices/sensor-2/state"]
    assert (text["payload"], text["encoding"], text["size"], text["qos"]) == ('{"on": true}', "utf-8", 12, 1)
    assert (text["device"], text["publisher"]) == ("sensor-1", "sensor-1")
    assert (binary["payload"], binary["encoding"], binary["size"]) == ("/wAB", "base64", 3)
    assert (binary["device"], binary["publisher"]) == (None, "sensor-2")
    assert text["updated"].endswith("Z")


def _pages(client: Any, first: dict[str, Any]) -> list[list[str]]:
    pages = []
    response = client.get(RETAINED, first)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append([row["topic"] for row in body["results"]])
        if body["next"] is None:
            return pages
        response = client.get(body["next"])


@pytest.fixture
def many(acme: Any) -> list[str]:
    """Twenty topics under fleet/, every other one a `state`."""
    topics = [f"fleet/{i:02}/{'state' if i % 2 == 0 else 'log'}" for i in range(20)]
    for topic in topics:
        _retain(acme, topic)
    return [t for t in topics if t.endswith("/state")]


def test_pages_follow_the_topic_order_with_next_and_previous_links(viewer: Any, many: list[str]) -> None:
    pages = _pages(viewer, {"filter": "fleet/+/state", "limit": 4})
    assert pages == [many[0:4], many[4:8], many[8:10]]
    second = viewer.get(viewer.get(RETAINED, {"filter": "fleet/+/state", "limit": 4}).json()["next"]).json()
    assert [row["topic"] for row in second["results"]] == many[4:8]
    back = viewer.get(second["previous"]).json()
    assert [row["topic"] for row in back["results"]] == many[0:4]
    assert back["previous"] is None


def test_a_sparse_filter_stops_scanning_early_and_the_next_link_goes_on(viewer: Any, many: list[str],
                                                                       monkeypatch: Any) -> None:
    monkeypatch.setattr(TopicPagination, "max_scan", 3)
    monkeypatch.setattr(TopicPagination, "batch", 2)
    pages = _pages(viewer, {"filter": "fleet/+/state", "limit": 100})
    assert all(len(page) <= 2 for page in pages) and len(pages) > 3
    assert [topic for page in pages for topic in page] == many


def test_a_bad_filter_cursor_or_limit_is_a_400_naming_it(viewer: Any) -> None:
    for params, field in [({"filter": "a/#/b"}, "filter"), ({"filter": "a+"}, "filter"),
                          ({"filter": "a/\x00"}, "filter"), ({"filter": "$share/g/a/#"}, "filter"),
                          ({"cursor": "not-a-cursor!"}, "cursor"), ({"cursor": "eyJyIjoyfQ"}, "cursor"),
                          ({"limit": "0"}, "limit")]:
        response = viewer.get(RETAINED, params)
        assert (response.status_code, response.json()["field"]) == (400, field), params


# Clearing ------------------------------------------------------------------------------------


def test_clearing_a_subtree_asks_the_broker_and_answers_what_the_database_held(
        acme: Any, operator: Any, stored: None) -> None:
    response = operator.delete(f"{RETAINED}?filter=devices/sensor-1/%23")
    assert response.status_code == 202, response.content
    # The parent, state and fw/version; not the expired one, the other case or globex's.
    assert response.json() == {"cleared": 3}
    change = ChangeEvent.objects.filter(kind="retained", op="clear").latest("id")
    assert change.payload == {"topic": "devices/sensor-1/#", "tenant": "acme"}
    event = AuditEvent.objects.filter(action="retained.clear").latest("id")
    assert (event.actor_label, event.tenant, event.before["topic"]) == ("api-key:cleaner", acme,
                                                                        "devices/sensor-1/#")


def test_clearing_one_topic_counts_that_topic(operator: Any, stored: None) -> None:
    response = operator.delete(f"{RETAINED}?filter=devices/sensor-2/state")
    assert (response.status_code, response.json()) == (202, {"cleared": 1})


def test_clearing_needs_a_valid_filter(operator: Any) -> None:
    for query, status in [("", 400), ("?filter=", 400), ("?filter=a/%23/b", 400)]:
        response = operator.delete(RETAINED + query)
        assert (response.status_code, response.json()["field"]) == (status, "filter")
    assert not ChangeEvent.objects.filter(kind="retained").exists()


def test_a_viewer_cannot_clear(viewer: Any, stored: None) -> None:
    response = viewer.delete(f"{RETAINED}?filter=%23")
    assert response.status_code == 403
    assert not ChangeEvent.objects.filter(kind="retained").exists()
