"""The registry admin: deletions, single or "delete selected", are audited and announced."""

from __future__ import annotations

import pytest

from acl.models import AclRule
from acl.services import create_rule
from devices.models import AuditEvent, ChangeEvent, Device
from devices.services import create_device

pytestmark = pytest.mark.django_db


def _device_with_a_rule(acme, name):
    device = create_device(acme, name)
    rule = create_rule(acme, subject_kind="device", subject_device=device, action="both", topic_filter=f"{name}/#")
    return device, rule


def _assert_deleted_with_events(device, rule):
    assert not Device.objects.filter(pk=device.pk).exists()
    assert AuditEvent.objects.filter(action="device.delete", target_id=str(device.pk), actor_label="root").exists()
    assert ChangeEvent.objects.filter(kind="device", op="deleted", object_id=str(device.pk)).exists()
    # The device's own rules go through the ACL service, so the broker reloads the tenant.
    assert not AclRule.objects.filter(pk=rule.pk).exists()
    assert ChangeEvent.objects.filter(kind="acl_rule", op="deleted", object_id=str(rule.pk)).exists()


def test_deleting_a_device_in_the_admin_goes_through_the_registry_service(admin_client, acme) -> None:
    device, rule = _device_with_a_rule(acme, "d1")
    response = admin_client.post(f"/admin/devices/device/{device.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.content[:2000]
    _assert_deleted_with_events(device, rule)


def test_delete_selected_deletes_each_device_as_a_single_delete_would(admin_client, acme) -> None:
    pairs = [_device_with_a_rule(acme, name) for name in ("d1", "d2", "d3")]
    response = admin_client.post("/admin/devices/device/", {
        "action": "delete_selected", "post": "yes",
        "_selected_action": [str(device.pk) for device, _ in pairs[:2]],
    })
    assert response.status_code == 302, response.content[:2000]
    for device, rule in pairs[:2]:
        _assert_deleted_with_events(device, rule)
    assert Device.objects.filter(pk=pairs[2][0].pk).exists()


