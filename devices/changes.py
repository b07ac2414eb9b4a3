"""The change-event outbox: "what changed", written in the same transaction as the change.

The broker tails this table to apply changes live. Because the row commits or rolls back
with the change itself, the broker never sees a change that did not happen and never misses
one that did, even if it was down at the time. On PostgreSQL a NOTIFY (delivered only on
commit) wakes the broker at once; on SQLite the broker polls.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from .models import ChangeEvent, Tenant

NOTIFY_CHANNEL = "roost_changes"


def record_change(
    kind: str,
    op: str,
    object_id: Any,
    *,
    tenant: Tenant | None,
    payload: dict[str, Any] | None = None,
) -> ChangeEvent:
    """Append one outbox row; must run inside the transaction that makes the change."""
    if not connection.in_atomic_block:
        raise RuntimeError("record_change() must be called inside transaction.atomic()")
    event = ChangeEvent.objects.create(
        tenant=tenant, kind=kind, op=op, object_id=str(object_id), payload=payload or {}
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, str(event.id)])
    return event


def changes_after(last_id: int, limit: int = 1000) -> list[ChangeEvent]:
    """Outbox rows newer than last_id, oldest first."""
    return list(ChangeEvent.objects.filter(id__gt=last_id).order_by("id")[:limit])


def latest_change_id() -> int:
    last = ChangeEvent.objects.order_by("-id").values_list("id", flat=True).first()
    return int(last or 0)


__all__ = ["NOTIFY_CHANNEL", "changes_after", "latest_change_id", "record_change", "transaction"]
