"""Listing devices: filters, ordering, and cursor pagination that returns every device once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from broker.integration.models import ConnectionEvent
from devices.models import Device, Role
from devices.services import create_device, create_group

URL = "/api/v1/tenants/acme/devices/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, Role.VIEWER, name="dash"))


def names(client: Any, query: str = "") -> list[str]:
    response = client.get(URL + query)
    assert response.status_code == 200, response.content
    return [d["name"] for d in response.json()["results"]]


def test_prefix_finds_names_that_start_with_it(acme: Any, viewer: Any) -> None:
    for name in ("line-1.a", "line-1.b", "line-10.a", "xline-1"):
        create_device(acme, name)
    assert names(viewer, "?prefix=line-1.") == ["line-1.a", "line-1.b"]


def test_search_looks_in_names_and_display_names_ignoring_case(acme: Any, viewer: Any) -> None:
    create_device(acme, "pump-1")
    create_device(acme, "s-2", display_name="Backup PUMP")
    create_device(acme, "valve-1")
    assert names(viewer, "?search=pump") == ["pump-1", "s-2"]


def test_group_includes_nested_groups(acme: Any, viewer: Any) -> None:
    building = create_group(acme, "building")
    floor = create_group(acme, "floor-1", parent=building)
    room = create_group(acme, "room-7", parent=floor)
    create_device(acme, "in-building", group=building)
    create_device(acme, "in-room", group=room)
    create_device(acme, "elsewhere", group=create_group(acme, "other"))
    create_device(acme, "ungrouped")
    assert names(viewer, "?group=building") == ["in-building", "in-room"]
    assert names(viewer, "?group=floor-1") == ["in-room"]
    assert names(viewer, "?group=missing") == []


def test_attr_matches_strings_and_the_json_values_they_spell(acme: Any, viewer: Any) -> None:
    create_device(acme, "number", attributes={"floor": 3, "model": "th-2"})
    create_device(acme, "string", attributes={"floor": "3", "model": "th-2"})
    create_device(acme, "other-floor", attributes={"floor": 4, "model": "th-2"})
    create_device(acme, "flag", attributes={"beta": True, "floor": 3, "model": "th-3"})
    create_device(acme, "none", attributes={})
    assert names(viewer, "?attr=floor:3") == ["flag", "number", "string"]
    assert names(viewer, "?attr=floor:3&attr=model:th-2") == ["number", "string"]
    assert names(viewer, "?attr=beta:true") == ["flag"]
    assert names(viewer, "?attr=model:th") == []


def test_attr_keys_are_taken_literally(acme: Any, viewer: Any) -> None:
    create_device(acme, "dotted", attributes={"a.b": "x", "a__b": "y", "a": {"b": "z"}})
    assert names(viewer, "?attr=a.b:x") == ["dotted"]
    assert names(viewer, "?attr=a__b:y") == ["dotted"]
    assert names(viewer, "?attr=a__b:z") == []


def test_attr_values_may_contain_colons(acme: Any, viewer: Any) -> None:
    create_device(acme, "mac", attributes={"mac": "aa:bb:cc"})
    assert names(viewer, "?attr=mac:aa:bb:cc") == ["mac"]


@pytest.mark.parametrize("bad", ["nocolon", ":value", "k" * 129 + ":v"])
def test_a_malformed_attr_filter_is_a_400(viewer: Any, bad: str) -> None:
    response = viewer.get(URL, {"attr": bad})
    assert (response.status_code, response.json()["field"]) == (400, "attr")


def test_online_and_enabled_filter_by_presence_and_state(acme: Any, viewer: Any) -> None:
    for name in ("on", "off", "disabled"):
        create_device(acme, name, enabled=name != "disabled")
    Device.objects.filter(name="on").update(online=True)
    assert names(viewer, "?online=true") == ["on"]
    assert names(viewer, "?online=false") == ["disabled", "off"]
    assert names(viewer, "?enabled=false") == ["disabled"]
    assert names(viewer, "?online=false&enabled=true") == ["off"]


def test_devices_sort_by_name_by_default_and_by_the_chosen_field(acme: Any, viewer: Any) -> None:
    now = timezone.now()
    for index, name in enumerate(["b", "c", "a", "d"]):
        device = create_device(acme, name)
        seen = None if name == "d" else now - timedelta(minutes=index)
        Device.objects.filter(pk=device.pk).update(last_seen=seen)
    assert names(viewer) == ["a", "b", "c", "d"]
    assert names(viewer, "?ordering=-name") == ["d", "c", "b", "a"]
    assert names(viewer, "?ordering=created") == ["b", "c", "a", "d"]
    # Never seen counts as oldest.
    assert names(viewer, "?ordering=-last_seen") == ["b", "c", "a", "d"]
    assert names(viewer, "?ordering=last_seen") == ["d", "a", "c", "b"]


def test_an_unknown_ordering_is_a_400(viewer: Any) -> None:
    response = viewer.get(URL, {"ordering": "attributes"})
    assert (response.status_code, response.json()["field"]) == (400, "ordering")


def _follow(client: Any, url: str) -> tuple[list[str], int]:
    seen: list[str] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [d["name"] for d in body["results"]]
        pages += 1
        url = body["next"] and urlsplit(body["next"])._replace(scheme="", netloc="").geturl()
    return seen, pages


@pytest.mark.parametrize("ordering", ["name", "-name", "last_seen", "-last_seen", "created", "-created"])
def test_following_next_returns_every_device_exactly_once_whatever_the_order(
        acme: Any, viewer: Any, ordering: str) -> None:
    devices = [create_device(acme, f"d-{i:02}") for i in range(23)]
    # Ties on purpose: most never seen, several seen at the same instant, all created at once.
    same = timezone.now()
    Device.objects.filter(pk__in=[d.pk for d in devices[:6]]).update(last_seen=same)
    Device.objects.filter(pk__in=[d.pk for d in devices]).update(created=same)
    seen, pages = _follow(viewer, f"{URL}?limit=5&ordering={ordering}")
    assert sorted(seen) == sorted(d.name for d in devices)
    assert len(seen) == len(set(seen)) == 23
    assert pages == 5


def test_previous_goes_back_to_the_page_before(acme: Any, viewer: Any) -> None:
    for i in range(7):
        create_device(acme, f"d-{i}")
    first = viewer.get(URL, {"limit": 3}).json()
    assert first["previous"] is None
    second = viewer.get(first["next"]).json()
    back = viewer.get(second["previous"]).json()
    assert [d["name"] for d in back["results"]] == [d["name"] for d in first["results"]]
    assert [d["name"] for d in second["results"]] == ["d-3", "d-4", "d-5"]


def test_filters_hold_across_pages(acme: Any, viewer: Any) -> None:
    for i in range(12):
        create_device(acme, f"d-{i:02}")
    Device.objects.filter(name__in=[f"d-{i:02}" for i in range(0, 12, 2)]).update(online=True)
    seen, _ = _follow(viewer, f"{URL}?online=true&limit=4")
    assert seen == [f"d-{i:02}" for i in range(0, 12, 2)]


@pytest.mark.parametrize("cursor", ["garbage", "eyJyIjowLCJwIjpbMV19", "eyJyIjowLCJwIjpbbnVsbF19", "%00"])
def test_a_made_up_cursor_is_a_400(acme: Any, viewer: Any, cursor: str) -> None:
    response = viewer.get(f"{URL}?cursor={cursor}&ordering=last_seen")
    assert (response.status_code, response.json()["field"]) == (400, "cursor")


@pytest.mark.parametrize("limit", ["0", "1001", "x", "-1"])
def test_a_bad_limit_is_a_400(viewer: Any, limit: str) -> None:
    assert viewer.get(URL, {"limit": limit}).status_code == 400


def test_a_page_of_online_devices_costs_the_same_queries_however_many_are_online(
        acme: Any, viewer: Any, django_assert_max_num_queries: Any) -> None:
    now = timezone.now()
    for i in range(40):
        device = create_device(acme, f"d-{i:02}", group=create_group(acme, f"g-{i}"))
        ConnectionEvent.objects.create(tenant=acme, device=device, client_id=device.name, event="connected",
                                       at=now, certificate_serial=f"{i:04x}")
    Device.objects.filter(tenant=acme).update(online=True)
    viewer.get(URL)  # the key's last-used time is written on first use
    # Authentication, tenant, the page (with groups and serials joined in): no query per row.
    with django_assert_max_num_queries(4):
        body = viewer.get(URL, {"online": "true"}).json()
    assert [d["presence"]["certificate_serial"] for d in body["results"]][:2] == ["0000", "0001"]
    assert body["results"][5]["group"] == "g-5"
