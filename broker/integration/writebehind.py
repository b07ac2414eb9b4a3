"""Batched, coalesced writes from the broker to the database.

The event loop only records what changed in dictionaries keyed by what it changes (a topic,
a device), so a topic updated a thousand times between two flushes costs one row write.
A flush swaps the dictionaries out on the loop and writes them in one transaction from a
worker thread; at most one flush runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import close_old_connections, transaction

from devices.models import Device, Tenant

from .models import ConnectionEvent, RetainedMessage

log = logging.getLogger("roost.broker.writebehind")


@dataclass(slots=True)
class RetainedRow:
    payload: bytes
    qos: int
    properties: dict[str, Any]
    publisher_id: int | None
    publisher_name: str
    expires_at: datetime | None
    updated: datetime


@dataclass(slots=True)
class PresenceRow:
    """A device's presence; a field left None keeps what the registry holds."""

    online: bool
    last_seen: datetime | None
    last_ip: str | None
    protocol_version: int | None

    def fields(self) -> dict[str, Any]:
        values = {"online": self.online, "last_seen": self.last_seen, "last_ip": self.last_ip,
                  "protocol_version": self.protocol_version}
        return {name: value for name, value in values.items() if value is not None}


class WriteBehind:
    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._retained: dict[tuple[int, str], RetainedRow | None] = {}
        self._presence: dict[int, PresenceRow] = {}
        self._events: list[ConnectionEvent] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.rows_written = 0

    # Called on the event loop -------------------------------------------------------------

    def retained_set(self, tenant_id: int, topic: str, row: RetainedRow) -> None:
        self._retained[(tenant_id, topic)] = row

    def retained_clear(self, tenant_id: int, topic: str) -> None:
        self._retained[(tenant_id, topic)] = None

    def presence(self, device_id: int, row: PresenceRow) -> None:
        self._presence[device_id] = row

    def connection_event(self, event: ConnectionEvent) -> None:
        self._events.append(event)

    @property
    def pending(self) -> int:
        return len(self._retained) + len(self._presence) + len(self._events)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="roost-writebehind")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self.pending:
                return
            retained, self._retained = self._retained, {}
            presence, self._presence = self._presence, {}
            events, self._events = self._events, []
            try:
                await asyncio.to_thread(self._write, retained, presence, events)
            except Exception:
                log.exception("writing broker state failed; keeping it for the next flush")
                # Newer values recorded meanwhile win over the ones we put back.
                self._retained = retained | self._retained
                self._presence = presence | self._presence
                self._events = events + self._events

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    # Runs in a worker thread -----------------------------------------------------------------

    def _write(
        self,
        retained: dict[tuple[int, str], RetainedRow | None],
        presence: dict[int, PresenceRow],
        events: list[ConnectionEvent],
    ) -> None:
        close_old_connections()
        with transaction.atomic():
            # Devices first, in id order: a device deletion locks its row first as well, so
            # the two serialize instead of deadlocking over the rows that point at it.
            ids = _device_ids(retained, presence, events)
            devices = set(Device.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")
                          .values_list("pk", flat=True)) if ids else set()
            retained = _without_dangling_references(retained, events, devices)
            upserts = [
                RetainedMessage(
                    tenant_id=tenant_id, topic=topic, payload=row.payload, qos=row.qos,
                    properties=row.properties, publisher_id=row.publisher_id,
                    publisher_name=row.publisher_name, expires_at=row.expires_at, updated=row.updated,
                )
                for (tenant_id, topic), row in retained.items()
                if row is not None
            ]
            if upserts:
                RetainedMessage.objects.bulk_create(
                    upserts, batch_size=500, update_conflicts=True, unique_fields=["tenant", "topic"],
                    update_fields=["payload", "qos", "properties", "publisher", "publisher_name",
                                   "expires_at", "updated"],
                )
            clears: dict[int, list[str]] = {}
            for (tenant_id, topic), row in retained.items():
                if row is None:
                    clears.setdefault(tenant_id, []).append(topic)
            for tenant_id, topics in clears.items():
                for start in range(0, len(topics), 500):
                    RetainedMessage.objects.filter(tenant_id=tenant_id, topic__in=topics[start:start + 500]).delete()
            for device_id, p in presence.items():
                Device.objects.filter(pk=device_id).update(**p.fields())
            if events:
                ConnectionEvent.objects.bulk_create(events, batch_size=500)
        self.rows_written += len(retained) + len(presence) + len(events)


def _device_ids(retained: dict[tuple[int, str], RetainedRow | None], presence: dict[int, PresenceRow],
                events: list[ConnectionEvent]) -> list[int]:
    ids = set(presence)
    ids |= {e.device_id for e in events if e.device_id is not None}
    ids |= {row.publisher_id for row in retained.values() if row is not None and row.publisher_id is not None}
    return sorted(ids)


def _without_dangling_references(
    retained: dict[tuple[int, str], RetainedRow | None], events: list[ConnectionEvent], devices: set[int],
) -> dict[tuple[int, str], RetainedRow | None]:
    """Drop what points at devices or tenants deleted since it was recorded.

    A device deleted while connected still gets its disconnect event, and a row naming it
    would fail the whole transaction at commit, at every retry, so that one deletion would
    stop every later write of the broker. Such rows lose the reference instead (a deleted
    tenant's retained messages go entirely); the events' tenant and device are nullable.
    `devices` are the ids, of those referenced, that still exist (locked by the caller).
    """
    tenant_ids = {e.tenant_id for e in events if e.tenant_id is not None} | {tenant for tenant, _ in retained}
    tenants = set(Tenant.objects.filter(pk__in=tenant_ids).values_list("pk", flat=True)) if tenant_ids else set()
    for event in events:
        if event.device_id is not None and event.device_id not in devices:
            event.device = None
        if event.tenant_id is not None and event.tenant_id not in tenants:
            event.tenant = None
    kept: dict[tuple[int, str], RetainedRow | None] = {}
    for key, row in retained.items():
        if key[0] not in tenants:
            continue
        if row is not None and row.publisher_id is not None and row.publisher_id not in devices:
            row.publisher_id = None
        kept[key] = row
    return kept
