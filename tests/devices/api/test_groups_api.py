"""`groups/`: nested device groups; deleting one refuses while it has children or rules."""

from __future__ import annotations

from typing import Any

import pytest

from acl.services import create_rule
from devices.models import AuditEvent, ChangeEvent, Device, DeviceGroup, Role
from devices.services import create_device, create_group

URL = "/api/v1/tenants/acme/groups/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(acme: Any, make_api_key: Any, api: Any) -> Any:
    return api(make_api_key(acme, Role.OPERATOR, name="ops"))


def test_an_operator_creates_a_nested_group(acme: Any, operator: Any) -> None:
    create_group(acme, "building")
    response = operator.post(URL, {"name": "floor-1", "parent": "building", "description": "First floor"})
    assert response.status_code == 201, response.content
    assert {k: response.json()[k] for k in ("name", "parent", "description", "device_count")} == {
        "name": "floor-1", "parent": "building", "description": "First floor", "device_count": 0}
    assert response["Location"].endswith("/groups/floor-1/")
    assert AuditEvent.objects.filter(action="group.create").latest("id").actor_label == "api-key:ops"


def test_groups_show_how_many_devices_they_hold(acme: Any, operator: Any) -> None:
    line = create_group(acme, "line-1")
    for i in range(3):
        create_device(acme, f"d-{i}", group=line)
    create_group(acme, "empty")
    listed = {g["name"]: g["device_count"] for g in operator.get(URL).json()["results"]}
    assert listed == {"empty": 0, "line-1": 3}


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "bad name"}, "name"),
    ({"name": "g", "parent": "missing"}, "parent"),
    ({"parent": "x"}, "name"),
])
def test_a_bad_group_field_is_a_400_naming_it(acme: Any, operator: Any, body: dict[str, Any], field: str) -> None:
    response = operator.post(URL, body)
    assert (response.status_code, response.json()["field"]) == (400, field)


def test_a_taken_group_name_is_a_400(acme: Any, operator: Any) -> None:
    create_group(acme, "line-1")
    response = operator.post(URL, {"name": "line-1"})
    assert (response.status_code, response.json()["field"]) == (400, "name")


def test_moving_a_group_under_its_own_descendant_is_refused(acme: Any, operator: Any) -> None:
    building = create_group(acme, "building")
    create_group(acme, "floor-1", parent=building)
    response = operator.patch(f"{URL}building/", {"parent": "floor-1"})
    assert (response.status_code, response.json()["field"]) == (400, "parent")
    assert operator.patch(f"{URL}building/", {"parent": "building"}).json()["field"] == "parent"
    assert DeviceGroup.objects.get(name="building").parent is None


def test_an_operator_renames_and_moves_a_group_and_the_broker_hears_of_it(acme: Any, operator: Any) -> None:
    create_group(acme, "a")
    create_group(acme, "b")
    response = operator.patch(f"{URL}b/", {"name": "b2", "parent": "a", "description": "moved"})
    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["parent"]) == ("b2", "a")
    assert ChangeEvent.objects.filter(kind="group", op="updated").exists()
    event = AuditEvent.objects.get(action="group.update")
    assert (event.before["name"], event.after["name"], event.after["parent"]) == ("b", "b2", "a")
    assert operator.patch(f"{URL}b2/", {"parent": None}).json()["parent"] is None


def test_renaming_to_a_taken_name_is_a_400(acme: Any, operator: Any) -> None:
    create_group(acme, "a")
    create_group(acme, "b")
    response = operator.patch(f"{URL}b/", {"name": "a"})
    assert (response.status_code, response.json()["field"]) == (400, "name")


def test_deleting_a_group_ungroups_its_devices(acme: Any, operator: Any) -> None:
    create_device(acme, "d-1", group=create_group(acme, "line-1"))
    assert operator.delete(f"{URL}line-1/").status_code == 204
    assert Device.objects.get(name="d-1").group is None
    assert AuditEvent.objects.get(action="group.delete").after == {"devices_ungrouped": 1}
    assert ChangeEvent.objects.filter(kind="group", op="deleted").exists()


def test_a_group_with_nested_groups_cannot_be_deleted(acme: Any, operator: Any) -> None:
    create_group(acme, "floor-1", parent=create_group(acme, "building"))
    response = operator.delete(f"{URL}building/")
    assert (response.status_code, response.json()["code"]) == (400, "group_has_children")
    assert "floor-1" in response.json()["message"]
    assert DeviceGroup.objects.filter(name="building").exists()


def test_a_group_named_by_an_acl_rule_cannot_be_deleted(acme: Any, operator: Any) -> None:
    group = create_group(acme, "line-1")
    create_rule(acme, subject_kind="group", subject_group=group, action="publish", topic_filter="lines/{group}/#")
    response = operator.delete(f"{URL}line-1/")
    assert (response.status_code, response.json()["code"]) == (400, "group_in_use")
    assert DeviceGroup.objects.filter(name="line-1").exists()


def test_another_tenants_group_is_a_404(globex: Any, operator: Any) -> None:
    create_group(globex, "theirs")
    assert operator.get(f"{URL}theirs/").status_code == 404
    assert operator.delete(f"{URL}theirs/").status_code == 404
    assert operator.post(URL, {"name": "mine", "parent": "theirs"}).json()["field"] == "parent"
