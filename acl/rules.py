"""The pure rule and principal values the broker and the decision code share (no Django)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Subject kinds of a rule.
SUBJECT_ALL_DEVICES = "all_devices"
SUBJECT_GROUP = "group"
SUBJECT_DEVICE = "device"
SUBJECT_ROLE = "role"
SUBJECT_SERVICE = "service"
SUBJECT_KINDS = (SUBJECT_ALL_DEVICES, SUBJECT_GROUP, SUBJECT_DEVICE, SUBJECT_ROLE, SUBJECT_SERVICE)

PUBLISH = "publish"
SUBSCRIBE = "subscribe"
BOTH = "both"
ACTIONS = (PUBLISH, SUBSCRIBE, BOTH)

ALLOW = "allow"
DENY = "deny"
EFFECTS = (ALLOW, DENY)

# Principal kinds.
DEVICE = "device"
USER = "user"
SERVICE = "service"
PRINCIPAL_KINDS = (DEVICE, USER, SERVICE)

# Mirrors devices.models.ROLE_RANK (this module may not import Django): a higher role
# receives the rules written for every lower one.
ROLE_RANK = {"viewer": 1, "operator": 2, "admin": 3, "owner": 4}
RULE_ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One ACL rule as the matcher sees it; `topic_filter` is the unsubstituted template."""

    id: int
    tenant: str
    subject_kind: str
    subject_value: str
    action: str
    topic_filter: str
    effect: str
    max_qos: int | None = None
    allow_retain: bool = True
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.subject_kind not in SUBJECT_KINDS:
            raise ValueError(f"Unknown subject kind {self.subject_kind!r}.")
        if self.action not in ACTIONS:
            raise ValueError(f"Unknown action {self.action!r}.")
        if self.effect not in EFFECTS:
            raise ValueError(f"Unknown effect {self.effect!r}.")
        if self.max_qos is not None and self.max_qos not in (0, 1, 2):
            raise ValueError("max_qos must be 0, 1, 2 or None.")

    @property
    def publishes(self) -> bool:
        return self.action in (PUBLISH, BOTH)

    @property
    def subscribes(self) -> bool:
        return self.action in (SUBSCRIBE, BOTH)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "tenant": self.tenant, "subject_kind": self.subject_kind,
            "subject_value": self.subject_value, "action": self.action,
            "topic_filter": self.topic_filter, "effect": self.effect, "max_qos": self.max_qos,
            "allow_retain": self.allow_retain, "enabled": self.enabled,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleSpec:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def _frozen_attributes(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the facts rules are selected by and variables are filled from.

    `groups` holds the device's own group first, then its ancestors nearest first, so that
    `{group}` is `groups[0]` and a rule for a group also reaches devices of nested groups.
    """

    kind: str
    tenant: str
    device: str | None = None
    groups: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=True)
    role: str | None = None
    service: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in PRINCIPAL_KINDS:
            raise ValueError(f"Unknown principal kind {self.kind!r}.")
        if self.kind == USER and self.role not in ROLE_RANK:
            raise ValueError(f"A user principal needs a role among {', '.join(ROLE_RANK)}.")
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "attributes", _frozen_attributes(self.attributes))

    @classmethod
    def for_device(
        cls, tenant: str, name: str, groups: tuple[str, ...] | list[str] = (),
        attributes: Mapping[str, Any] | None = None,
    ) -> Principal:
        return cls(kind=DEVICE, tenant=tenant, device=name, groups=tuple(groups),
                   attributes=attributes or {})

    @classmethod
    def for_role(cls, tenant: str, role: str) -> Principal:
        return cls(kind=USER, tenant=tenant, role=role)

    @classmethod
    def for_service(cls, tenant: str, credential: str) -> Principal:
        return cls(kind=SERVICE, tenant=tenant, service=credential)

    @property
    def label(self) -> str:
        if self.kind == DEVICE:
            return f"device {self.device}"
        if self.kind == USER:
            return f"role {self.role}"
        return f"service {self.service}"


def applies_to(rule: RuleSpec, principal: Principal) -> bool:
    """Whether `rule` is written for `principal` (ignoring its filter)."""
    if not rule.enabled or rule.tenant != principal.tenant:
        return False
    kind = rule.subject_kind
    if kind == SUBJECT_ALL_DEVICES:
        return principal.kind == DEVICE
    if kind == SUBJECT_DEVICE:
        return principal.kind == DEVICE and principal.device == rule.subject_value
    if kind == SUBJECT_GROUP:
        return principal.kind == DEVICE and rule.subject_value in principal.groups
    if kind == SUBJECT_ROLE:
        wanted = ROLE_RANK.get(rule.subject_value)
        return principal.kind == USER and wanted is not None and ROLE_RANK[principal.role or ""] >= wanted
    return principal.kind == SERVICE and principal.service == rule.subject_value
