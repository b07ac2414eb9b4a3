"""Load rules and principal facts from the database into the pure core's values.

The broker calls these at start and again for a tenant whose `rules_version` moved (an
`acl_rule` change event carries the new version). Nothing here runs per message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from devices.models import Device, DeviceGroup, Membership, Tenant

from .models import AclRule, AclRuleSet
from .rules import SUBJECT_SERVICE, Principal, RuleSpec


@dataclass(frozen=True)
class TenantRules:
    """A tenant's rules at one version, ready for `compile_rules`."""

    tenant: str
    version: int
    rules: tuple[RuleSpec, ...]

    def service_credentials(self) -> list[str]:
        return sorted({rule.subject_value for rule in self.rules if rule.subject_kind == SUBJECT_SERVICE})


def rules_version(tenant: Tenant) -> int:
    return int(AclRuleSet.objects.filter(tenant=tenant).values_list("version", flat=True).first() or 0)


def _specs(queryset: Any, slug: str) -> tuple[RuleSpec, ...]:
    rows = queryset.select_related("subject_group", "subject_device").order_by("id")
    return tuple(rule.to_spec(slug) for rule in rows)


def load_tenant_rules(tenant: Tenant | str) -> TenantRules:
    """The tenant's rules (enabled or not: disabled ones never apply) with their version.

    The version is read before and after the rules and the read repeats until both agree, so
    a concurrent commit cannot hand the broker rules of one version labelled with another.
    """
    if isinstance(tenant, str):
        tenant = Tenant.objects.get(slug=tenant)
    while True:
        with transaction.atomic():
            version = rules_version(tenant)
            specs = _specs(AclRule.objects.filter(tenant=tenant), tenant.slug)
            if rules_version(tenant) == version:
                return TenantRules(tenant.slug, version, specs)


def load_all_rules() -> dict[str, TenantRules]:
    """Every enabled tenant's rules, keyed by tenant slug."""
    return {tenant.slug: load_tenant_rules(tenant) for tenant in Tenant.objects.filter(enabled=True)}


def _group_chains(tenant_id: int) -> dict[int, tuple[str, ...]]:
    """For every group of the tenant: its name, then its ancestors' names, nearest first."""
    rows = {pk: (name, parent) for pk, name, parent in
            DeviceGroup.objects.filter(tenant_id=tenant_id).values_list("pk", "name", "parent_id")}
    chains: dict[int, tuple[str, ...]] = {}
    for pk in rows:
        names: list[str] = []
        node: int | None = pk
        # Bounded like DeviceGroup.ancestors(): a cycle that slipped in cannot hang the loader.
        while node is not None and node in rows and len(names) < 64:
            name, parent = rows[node]
            names.append(name)
            node = parent
        chains[pk] = tuple(names)
    return chains


def device_principal(device: Device) -> Principal:
    chain = _group_chains(device.tenant_id).get(device.group_id, ()) if device.group_id else ()
    return Principal.for_device(device.tenant.slug, device.name, chain, device.attributes)


def tenant_device_principals(tenant: Tenant, *, enabled_only: bool = False) -> list[Principal]:
    """Principals of all the tenant's devices, in two queries."""
    chains = _group_chains(tenant.pk)
    devices = Device.objects.filter(tenant=tenant)
    if enabled_only:
        devices = devices.filter(enabled=True)
    return [
        Principal.for_device(tenant.slug, name, chains.get(group_id, ()) if group_id else (), attributes)
        for name, group_id, attributes in devices.order_by("name").values_list("name", "group_id", "attributes")
    ]


def role_principal(tenant: Tenant, role: str) -> Principal:
    return Principal.for_role(tenant.slug, role)


def user_principal(user: Any, tenant: Tenant) -> Principal | None:
    """The principal of a portal user in a tenant, or None without a membership."""
    role = Membership.objects.filter(user=user, tenant=tenant).values_list("role", flat=True).first()
    return Principal.for_role(tenant.slug, role) if role else None


def service_principal(tenant: Tenant, credential: str) -> Principal:
    return Principal.for_service(tenant.slug, credential)


def tenant_principals(tenant: Tenant, rules: TenantRules | None = None) -> list[Principal]:
    """Every principal whose rights a rule change can touch: devices, roles, known services."""
    rules = rules or load_tenant_rules(tenant)
    principals = tenant_device_principals(tenant)
    principals.extend(role_principal(tenant, role) for role in ("viewer", "operator", "admin", "owner"))
    principals.extend(service_principal(tenant, cred) for cred in rules.service_credentials())
    return principals
