from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from broker.integration.models import ConnectionEvent, RetainedMessage
from broker.integration.writebehind import PresenceRow, RetainedRow, WriteBehind
from devices.models import Device
from devices.services import create_device

pytestmark = pytest.mark.django_db(transaction=True)


def _row(payload: bytes, device: Device | None = None) -> RetainedRow:
    return RetainedRow(payload=payload, qos=1, properties={}, publisher_id=device.pk if device else None,
                       publisher_name=device.name if device else "", expires_at=None, updated=datetime.now(UTC))


def test_many_updates_of_one_topic_become_one_row_write(acme) -> None:
    device = create_device(acme, "sensor-1")
    writer = WriteBehind()
    for i in range(1000):
        writer.retained_set(acme.pk, "devices/sensor-1/temp", _row(str(i).encode(), device))
    assert writer.pending == 1
    asyncio.run(writer.flush())
    row = RetainedMessage.objects.get(tenant=acme, topic="devices/sensor-1/temp")
    assert bytes(row.payload) == b"999"
    assert row.publisher == device and row.publisher_name == "sensor-1"
    assert writer.rows_written == 1


def test_a_later_clear_wins_over_an_earlier_set_and_deletes_the_row(acme) -> None:
    writer = WriteBehind()
    writer.retained_set(acme.pk, "a/b", _row(b"1"))
    asyncio.run(writer.flush())
    writer.retained_set(acme.pk, "a/b", _row(b"2"))
    writer.retained_clear(acme.pk, "a/b")
    asyncio.run(writer.flush())
    assert not RetainedMessage.objects.filter(tenant=acme).exists()


def test_an_upsert_replaces_the_previous_retained_message(acme, globex) -> None:
    writer = WriteBehind()
    writer.retained_set(acme.pk, "a/b", _row(b"first"))
    writer.retained_set(globex.pk, "a/b", _row(b"other tenant"))
    asyncio.run(writer.flush())
    writer.retained_set(acme.pk, "a/b", _row(b"second"))
    asyncio.run(writer.flush())
    assert bytes(RetainedMessage.objects.get(tenant=acme, topic="a/b").payload) == b"second"
    assert bytes(RetainedMessage.objects.get(tenant=globex, topic="a/b").payload) == b"other tenant"


def test_presence_and_connection_events_are_written_in_one_flush(acme) -> None:
    device = create_device(acme, "sensor-1")
    writer = WriteBehind()
    now = datetime.now(UTC)
    writer.presence(device.pk, PresenceRow(online=True, last_seen=now, last_ip="127.0.0.1", protocol_version=5))
    writer.connection_event(ConnectionEvent(tenant=acme, device=device, client_id="sensor-1",
                                            event=ConnectionEvent.CONNECTED, at=now, protocol_version=5))
    asyncio.run(writer.flush())
    device.refresh_from_db()
    assert device.online and device.last_ip == "127.0.0.1" and device.protocol_version == 5
    assert ConnectionEvent.objects.filter(device=device, event="connected").count() == 1
    assert writer.pending == 0
