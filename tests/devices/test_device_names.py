from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from devices.services import create_device
from devices.validators import is_valid_device_name, validate_device_name

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "name",
    ["sensor-1", "a", "Z9", "meter.kitchen_2:a", "x" * 128, "0abc"],
)
def test_it_accepts_names_made_of_the_allowed_characters(name: str) -> None:
    validate_device_name(name)
    assert is_valid_device_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a+b",
        "a#",
        "a/b",
        "$SYS",
        "a\x00b",
        "a b",
        "a\tb",
        "sensor\n",
        "a\uff0fb",  # full-width solidus
        "\u0455ensor",  # Cyrillic dze that looks like an s
        "sensor\u200b",  # zero-width space
        "-leading-dash",
        ".hidden",
        "x" * 129,
    ],
)
def test_it_rejects_names_that_could_break_topics_or_fool_a_reader(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_device_name(name)
    assert "letters, digits and . _ : -" in str(info.value)


def test_it_refuses_to_create_a_device_with_an_invalid_name_and_writes_nothing(acme) -> None:
    from devices.models import AuditEvent, ChangeEvent, Device

    events_before = ChangeEvent.objects.count()
    with pytest.raises(ValidationError):
        create_device(acme, "bad/name")
    assert not Device.objects.filter(tenant=acme).exists()
    assert ChangeEvent.objects.count() == events_before
    assert not AuditEvent.objects.filter(action="device.create").exists()


def test_it_refuses_a_duplicate_name_in_the_same_tenant(acme) -> None:
    create_device(acme, "sensor-1")
    with pytest.raises(ValidationError) as info:
        create_device(acme, "sensor-1")
    assert "already exists in tenant acme" in str(info.value)


def test_the_same_name_may_exist_in_two_tenants(acme, globex) -> None:
    a = create_device(acme, "sensor-1")
    b = create_device(globex, "sensor-1")
    assert a.pk != b.pk
