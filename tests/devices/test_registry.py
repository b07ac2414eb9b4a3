from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from devices.audit import Actor
from devices.changes import changes_after, latest_change_id, record_change
from devices.models import AuditEvent, ChangeEvent, Device, DeviceGroup, Tenant
from devices.services import (
    create_device,
    create_group,
    create_tenant,
    delete_device,
    set_device_enabled,
    set_tenant_enabled,
    update_device,
)

pytestmark = pytest.mark.django_db


def test_it_refuses_a_group_from_another_tenant(acme, globex) -> None:
    foreign = create_group(globex, "floor-1")
    with pytest.raises(ValidationError) as info:
        create_device(acme, "sensor-1", group=foreign)
    assert "another tenant" in str(info.value)
    assert not Device.objects.filter(name="sensor-1").exists()


def test_it_refuses_a_parent_group_from_another_tenant(acme, globex) -> None:
    foreign = create_group(globex, "building")
    with pytest.raises(ValidationError):
        create_group(acme, "floor-1", parent=foreign)


def test_it_refuses_a_group_cycle(acme) -> None:
    top = create_group(acme, "top")
    child = create_group(acme, "child", parent=top)
    top.parent = child
    with pytest.raises(ValidationError):
        top.full_clean()


def test_nested_groups_know_their_descendants(acme) -> None:
    top = create_group(acme, "top")
    mid = create_group(acme, "mid", parent=top)
    leaf = create_group(acme, "leaf", parent=mid)
    other = create_group(acme, "other")
    assert top.descendant_ids() == {top.pk, mid.pk, leaf.pk}
    assert other.pk not in top.descendant_ids()
    assert [g.name for g in leaf.ancestors()] == ["mid", "top"]


def test_tenant_querysets_only_show_the_tenants_own_rows(acme, globex) -> None:
    create_device(acme, "a-1")
    create_device(globex, "g-1")
    assert [d.name for d in Device.objects.for_tenant(acme)] == ["a-1"]
    assert [d.name for d in Device.objects.for_tenant(globex)] == ["g-1"]


def test_users_see_only_the_tenants_they_belong_to(alice, bob, charlie, acme, globex) -> None:
    create_device(acme, "a-1")
    create_device(globex, "g-1")
    assert list(Tenant.objects.visible_to(alice)) == [acme]
    assert list(Tenant.objects.visible_to(bob)) == [acme]
    assert list(Tenant.objects.visible_to(charlie)) == [globex]
    assert [d.name for d in Device.objects.visible_to(charlie)] == ["g-1"]


def test_every_registry_change_is_audited_with_before_and_after(acme, alice) -> None:
    actor = Actor.for_user(alice)
    device = create_device(acme, "sensor-1", actor=actor)
    update_device(device, display_name="Kitchen", actor=actor)
    set_device_enabled(device, False, actor=actor)
    delete_device(Device.objects.get(pk=device.pk), actor=actor)
    actions = list(AuditEvent.objects.for_tenant(acme).order_by("id").values_list("action", flat=True))
    assert actions[-4:] == ["device.create", "device.update", "device.disable", "device.delete"]
    update = AuditEvent.objects.get(action="device.update")
    assert update.before["display_name"] == "" and update.after["display_name"] == "Kitchen"
    assert update.actor_user == alice and update.actor_label == "alice"


def test_every_registry_change_writes_an_outbox_row(acme) -> None:
    start = latest_change_id()
    device = create_device(acme, "sensor-1")
    set_device_enabled(device, False)
    set_tenant_enabled(acme, False)
    rows = [(e.kind, e.op, e.payload.get("enabled")) for e in changes_after(start)]
    assert rows == [("device", "created", True), ("device", "updated", False), ("tenant", "updated", False)]


def test_a_rolled_back_change_leaves_no_outbox_row_and_no_audit(acme) -> None:
    start = latest_change_id()
    audits = AuditEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        create_device(acme, "sensor-1")
        raise RuntimeError("abort")
    assert changes_after(start) == []
    assert AuditEvent.objects.count() == audits
    assert not Device.objects.filter(name="sensor-1").exists()


@pytest.mark.django_db(transaction=True)
def test_the_outbox_refuses_writes_outside_a_transaction() -> None:
    tenant = create_tenant("acme")
    with pytest.raises(RuntimeError):
        record_change("device", "updated", 1, tenant=tenant)
    assert not ChangeEvent.objects.filter(kind="device").exists()


def test_a_tenant_slug_must_be_unique_and_valid(db) -> None:
    create_tenant("acme")
    with pytest.raises(ValidationError):
        create_tenant("acme")
    with pytest.raises(ValidationError):
        create_tenant("not a slug")
    assert Tenant.objects.count() == 1
    assert ChangeEvent.objects.filter(kind="tenant").count() == 1


def test_tags_and_attributes_must_have_the_right_shape(acme) -> None:
    with pytest.raises(ValidationError):
        create_device(acme, "s1", tags=["ok", 3])  # type: ignore[list-item]
    device = create_device(acme, "s2", tags=["roof"], attributes={"site": "north"})
    with pytest.raises(ValidationError):
        update_device(device, attributes=["not", "a", "dict"])
    assert Device.objects.get(pk=device.pk).attributes == {"site": "north"}


def test_group_names_follow_the_device_name_rule(acme) -> None:
    with pytest.raises(ValidationError):
        create_group(acme, "floor/1")
    assert not DeviceGroup.objects.exists()


def test_deleting_a_tenant_is_audited_and_announced_with_its_slug(acme) -> None:
    """(The admin refuses it while the tenant holds CAs, whose certificates must stay answerable.)"""
    from devices.services import delete_tenant

    create_device(acme, "d1")
    pk = acme.pk
    delete_tenant(acme)
    assert AuditEvent.objects.filter(action="tenant.delete", target_id=str(pk)).exists()
    change = ChangeEvent.objects.get(kind="tenant", op="deleted", object_id=str(pk))
    assert change.payload == {"slug": "acme"}  # the broker forgets the tenant's rules by slug
    assert not Device.objects.filter(name="d1").exists()


def test_the_tenant_delete_command_wants_a_confirmation(acme) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    from devices.services import create_device

    create_device(acme, "d1")
    with pytest.raises(CommandError, match=r"removes its 1 device\(s\).*repeat with --yes"):
        call_command("tenant", "delete", "acme")
    assert Tenant.objects.filter(slug="acme").exists()
    out = StringIO()
    call_command("tenant", "delete", "acme", "--yes", stdout=out)
    assert "deleted tenant acme and its 1 device(s)" in out.getvalue()
    assert not Tenant.objects.filter(slug="acme").exists()
    assert ChangeEvent.objects.filter(kind="tenant", op="deleted", payload={"slug": "acme"}).exists()
