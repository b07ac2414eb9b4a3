"""Requests to the running broker that go through the outbox, so they are audited and never lost."""

from __future__ import annotations

from django.db import transaction

from devices.audit import Actor, record_audit
from devices.changes import record_change
from devices.models import Tenant

from .models import RetainedMessage


def clear_retained(tenant: Tenant, topic: str, *, actor: Actor) -> None:
    """Ask the broker to clear a retained topic; it removes it from memory and the database."""
    with transaction.atomic():
        existing = RetainedMessage.objects.filter(tenant=tenant, topic=topic).first()
        record_audit(
            actor, "retained.clear", existing, tenant=tenant,
            before={"topic": topic, "size": existing.size if existing else 0},
        )
        record_change("retained", "clear", topic, tenant=tenant, payload={"topic": topic, "tenant": tenant.slug})
