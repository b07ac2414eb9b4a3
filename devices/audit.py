"""Who did what: the actor of a change and the audit trail it leaves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import ActorKind, AuditEvent, Tenant


@dataclass(frozen=True)
class Actor:
    kind: str
    label: str
    user: Any = None

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(kind=ActorKind.SYSTEM, label=label)

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(kind=ActorKind.USER, label=user.get_username(), user=user)

    @classmethod
    def api_key(cls, label: str) -> Actor:
        return cls(kind=ActorKind.API_KEY, label=label)


def record_audit(
    actor: Actor,
    action: str,
    target: Any,
    *,
    tenant: Tenant | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one audit row; call it inside the transaction of the change it records."""
    return AuditEvent.objects.create(
        tenant=tenant,
        actor_kind=actor.kind,
        actor_user=actor.user if actor.user is not None and actor.user.pk else None,
        actor_label=actor.label[:200],
        action=action,
        target_type=type(target).__name__.lower() if target is not None else "",
        target_id=str(getattr(target, "pk", "") or ""),
        target_repr=str(target)[:255] if target is not None else "",
        before=before,
        after=after,
    )
