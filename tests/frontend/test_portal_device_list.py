"""The device list: filters, search, sort, pages, the htmx table refresh and bulk actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from devices.models import AuditEvent, ChangeEvent, Device, Membership, Role
from devices.services import create_device, create_group

pytestmark = pytest.mark.django_db

LIST = "/portal/t/acme/devices/"
BULK = "/portal/t/acme/devices/-/bulk/"



@pytest.fixture
def fleet(acme: Any) -> dict[str, Device]:
    north = create_group(acme, "north")
    attic = create_group(acme, "attic", parent=north)
    now = datetime.now(UTC)
    devices = {
        "alpha": create_device(acme, "alpha", display_name="Kitchen thermometer", group=north,
                               attributes={"site": "north", "floor": "1"}),
        "bravo": create_device(acme, "bravo", group=attic, attributes={"site": "north"}),
        "charlie": create_device(acme, "charlie", attributes={"site": "south"}),
        "delta": create_device(acme, "delta", enabled=False),
    }
    Device.objects.filter(name="alpha").update(online=True, last_seen=now, last_ip="10.1.2.3", protocol_version=5)
    Device.objects.filter(name="bravo").update(last_seen=now - timedelta(hours=2), protocol_version=4)
    Device.objects.filter(name="charlie").update(last_seen=now - timedelta(days=3))
    return devices


@pytest.fixture
def operator(acme: Any, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_user("olga", password="olga-password-1")
    Membership.objects.create(user=user, tenant=acme, role=Role.OPERATOR)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(bob: Any) -> Client:
    client = Client()
    client.force_login(bob)
    return client


def _names(client: Client, query: str = "") -> list[str]:
    response = client.get(LIST + query)
    assert response.status_code == 200
    return [d.name for d in response.context["page"]]


def test_the_list_shows_state_last_seen_address_protocol_group_and_attributes(viewer: Client, fleet: Any) -> None:
    body = viewer.get(LIST).content.decode()
    for text in ("alpha", "Kitchen thermometer", "online", "offline", "disabled", "10.1.2.3", "MQTT 5.0",
                 "MQTT 3.1.1", "north", "attic", "site=north", "floor=1"):
        assert text in body, text


def test_devices_are_listed_by_name_by_default(viewer: Client, fleet: Any) -> None:
    assert _names(viewer) == ["alpha", "bravo", "charlie", "delta"]


def test_another_tenants_devices_are_never_listed(viewer: Client, fleet: Any, globex: Any) -> None:
    create_device(globex, "foreign")
    assert "foreign" not in _names(viewer)


def test_a_group_filter_includes_its_nested_groups(viewer: Client, fleet: Any) -> None:
    assert _names(viewer, f"?group={fleet['alpha'].group_id}") == ["alpha", "bravo"]
    assert _names(viewer, f"?group={fleet['bravo'].group_id}") == ["bravo"]


def test_an_attribute_filter_takes_a_key_or_a_key_and_value(viewer: Client, fleet: Any) -> None:
    assert _names(viewer, "?attr=floor") == ["alpha"]
    assert _names(viewer, "?attr=site%3Dnorth") == ["alpha", "bravo"]
    assert _names(viewer, "?attr=site+%3D+south") == ["charlie"]
    assert _names(viewer, "?attr=site%3Dwest") == []


def test_online_and_enabled_filters(viewer: Client, fleet: Any) -> None:
    assert _names(viewer, "?online=yes") == ["alpha"]
    assert _names(viewer, "?online=no") == ["bravo", "charlie", "delta"]
    assert _names(viewer, "?enabled=no") == ["delta"]
    assert _names(viewer, "?enabled=yes&online=no") == ["bravo", "charlie"]


def test_search_looks_at_names_and_display_names(viewer: Client, fleet: Any) -> None:
    assert _names(viewer, "?q=kitchen") == ["alpha"]
    assert _names(viewer, "?q=RAV") == ["bravo"]


def test_sorting_by_last_seen_and_group(viewer: Client, fleet: Any) -> None:
    assert _names(viewer, "?sort=-last_seen") == ["alpha", "bravo", "charlie", "delta"]  # never seen: last
    assert _names(viewer, "?sort=last_seen") == ["charlie", "bravo", "alpha", "delta"]
    assert _names(viewer, "?sort=-name") == ["delta", "charlie", "bravo", "alpha"]
    assert _names(viewer, "?sort=-online")[0] == "alpha"


def test_a_header_click_reverses_the_order_of_the_sorted_column(viewer: Client, fleet: Any) -> None:
    columns = {c["label"]: c for c in viewer.get(LIST + "?sort=name").context["columns"]}
    assert columns["Name"]["direction"] == "ascending" and columns["Name"]["next"] == "-name"
    assert columns["Last seen"]["next"] == "-last_seen" and not columns["State"]["key"]


def test_nonsense_in_the_query_string_is_ignored_not_an_error(viewer: Client, fleet: Any) -> None:
    assert _names(viewer, "?group=abc&online=maybe&sort=password&page=-4") == ["alpha", "bravo", "charlie", "delta"]


def test_the_list_is_paginated_25_to_a_page(viewer: Client, acme: Any) -> None:
    for n in range(30):
        create_device(acme, f"d{n:02d}")
    assert len(_names(viewer)) == 25
    assert _names(viewer, "?page=2") == [f"d{n:02d}" for n in range(25, 30)]
    assert _names(viewer, "?page=99") == [f"d{n:02d}" for n in range(25, 30)]  # past the end: the last page
    body = viewer.get(LIST + "?online=no").content.decode()
    assert 'href="?online=no&amp;page=2"' in body


def test_an_htmx_request_gets_only_the_table(viewer: Client, fleet: Any) -> None:
    response = viewer.get(LIST + "?online=yes", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div id="device-table">')
    assert "<html" not in body and "alpha" in body and "bravo" not in body
    assert "HX-Request" in response["Vary"]


def test_a_boosted_or_history_request_gets_the_whole_page(viewer: Client, fleet: Any) -> None:
    for header in ({"HTTP_HX_BOOSTED": "true"}, {"HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}):
        body = viewer.get(LIST, HTTP_HX_REQUEST="true", **header).content.decode()
        assert "<html" in body


def test_the_filter_form_works_without_javascript_and_refreshes_the_table_with_it(viewer: Client, fleet: Any) -> None:
    body = viewer.get(LIST).content.decode()
    assert '<form method="get" class="filters"' in body
    assert 'hx-get="/portal/t/acme/devices/" hx-target="#device-table"' in body


# Bulk actions ----------------------------------------------------------------------------------


def _pks(fleet: dict[str, Device], *names: str) -> list[int]:
    return [fleet[name].pk for name in names]


def test_a_bulk_action_first_asks_for_confirmation_and_changes_nothing(operator: Client, fleet: Any) -> None:
    response = operator.post(BULK, {"action": "disable", "pk": _pks(fleet, "alpha", "bravo")})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Disable 2 devices?" in body and 'name="confirm" value="1"' in body
    assert Device.objects.filter(enabled=True).count() == 3


def test_a_confirmed_bulk_disable_goes_through_the_registry(operator: Client, fleet: Any) -> None:
    response = operator.post(BULK, {"action": "disable", "pk": _pks(fleet, "alpha", "bravo"), "confirm": "1",
                                    "back": "online=yes"})
    assert response.status_code == 302 and response["Location"] == LIST + "?online=yes"
    assert set(Device.objects.filter(enabled=False).values_list("name", flat=True)) == {"alpha", "bravo", "delta"}
    assert AuditEvent.objects.filter(action="device.disable", actor_label="olga").count() == 2
    assert ChangeEvent.objects.filter(kind="device", op="updated", payload__enabled=False).count() == 2


def test_a_confirmed_bulk_enable_and_delete(operator: Client, fleet: Any) -> None:
    operator.post(BULK, {"action": "enable", "pk": _pks(fleet, "delta"), "confirm": "1"})
    assert Device.objects.get(name="delta").enabled
    operator.post(BULK, {"action": "delete", "pk": _pks(fleet, "charlie", "delta"), "confirm": "1"})
    assert set(Device.objects.values_list("name", flat=True)) == {"alpha", "bravo"}
    assert AuditEvent.objects.filter(action="device.delete").count() == 2


def test_a_bulk_action_ignores_devices_of_another_tenant(operator: Client, fleet: Any, globex: Any) -> None:
    foreign = create_device(globex, "foreign")
    operator.post(BULK, {"action": "delete", "pk": [foreign.pk, fleet["alpha"].pk], "confirm": "1"})
    assert Device.objects.filter(pk=foreign.pk).exists()
    assert not Device.objects.filter(pk=fleet["alpha"].pk).exists()


def test_a_bulk_action_without_devices_says_so(operator: Client, fleet: Any) -> None:
    response = operator.post(BULK, {"action": "delete", "confirm": "1"}, follow=True)
    assert "Select at least one device." in response.content.decode()
    assert Device.objects.count() == 4


def test_the_bulk_back_link_cannot_lead_elsewhere(operator: Client, fleet: Any) -> None:
    response = operator.post(BULK, {"action": "enable", "pk": _pks(fleet, "delta"), "confirm": "1",
                                    "back": "//evil.example/\r\nx"})
    assert response["Location"].startswith(LIST + "?")
    assert "\n" not in response["Location"] and "//evil" not in response["Location"].split("?")[0]


def test_a_viewer_cannot_bulk_delete(viewer: Client, fleet: Any) -> None:
    response = viewer.post(BULK, {"action": "delete", "pk": _pks(fleet, "alpha"), "confirm": "1"})
    assert response.status_code == 403
    assert Device.objects.count() == 4
