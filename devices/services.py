"""Registry changes. Each one validates, saves, audits and writes its outbox row atomically."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from .audit import Actor, record_audit
from .changes import record_change
from .models import Device, DeviceGroup, Membership, Role, Tenant
from .signals import device_deleting, tenant_created


def _tenant_state(tenant: Tenant) -> dict[str, Any]:
    return {"slug": tenant.slug, "name": tenant.name, "enabled": tenant.enabled}


def create_tenant(slug: str, name: str = "", *, actor: Actor | None = None) -> Tenant:
    actor = actor or Actor.system()
    tenant = Tenant(slug=slug, name=name or slug)
    tenant.full_clean()
    with transaction.atomic():
        try:
            with transaction.atomic():
                tenant.save()
        except IntegrityError:
            raise ValidationError({"slug": f"A tenant with slug {slug!r} already exists."}) from None
        record_audit(actor, "tenant.create", tenant, tenant=tenant, after=_tenant_state(tenant))
        record_change("tenant", "created", tenant.pk, tenant=tenant, payload=_tenant_state(tenant))
        tenant_created.send(sender=Tenant, tenant=tenant, actor=actor)
    return tenant


def set_tenant_enabled(tenant: Tenant, enabled: bool, *, actor: Actor | None = None) -> Tenant:
    actor = actor or Actor.system()
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        before = _tenant_state(tenant)
        tenant.enabled = enabled
        tenant.save(update_fields=["enabled", "updated"])
        record_audit(actor, "tenant.enable" if enabled else "tenant.disable", tenant, tenant=tenant,
                     before=before, after=_tenant_state(tenant))
        record_change("tenant", "updated", tenant.pk, tenant=tenant, payload=_tenant_state(tenant))
    return tenant


def add_member(tenant: Tenant, user: Any, role: str, *, actor: Actor | None = None) -> Membership:
    actor = actor or Actor.system()
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; use one of {', '.join(Role.values)}."})
    with transaction.atomic():
        membership, _ = Membership.objects.update_or_create(user=user, tenant=tenant, defaults={"role": role})
        record_audit(actor, "membership.set", membership, tenant=tenant,
                     after={"user": user.get_username(), "role": role})
        record_change("membership", "updated", membership.pk, tenant=tenant,
                      payload={"user_id": user.pk, "role": role})
    return membership


def create_group(
    tenant: Tenant, name: str, *, parent: DeviceGroup | None = None, description: str = "",
    actor: Actor | None = None,
) -> DeviceGroup:
    actor = actor or Actor.system()
    group = DeviceGroup(tenant=tenant, name=name, parent=parent, description=description)
    # Uniqueness is left to the database constraint: a taken name is an error on `name`.
    group.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        try:
            with transaction.atomic():
                group.save()
        except IntegrityError:
            raise ValidationError({"name": f"Group {name!r} already exists in tenant {tenant.slug}."}) from None
        state = {"name": name, "parent": parent.name if parent else None}
        record_audit(actor, "group.create", group, tenant=tenant, after=state)
        record_change("group", "created", group.pk, tenant=tenant, payload=state)
    return group


def create_device(
    tenant: Tenant,
    name: str,
    *,
    display_name: str = "",
    group: DeviceGroup | None = None,
    tags: list[str] | None = None,
    attributes: dict[str, Any] | None = None,
    enabled: bool = True,
    actor: Actor | None = None,
) -> Device:
    actor = actor or Actor.system()
    device = Device(
        tenant=tenant, name=name, display_name=display_name, group=group,
        tags=list(tags or []), attributes=dict(attributes or {}), enabled=enabled,
    )
    # Uniqueness is left to the database constraint so that a race cannot slip through.
    device.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        try:
            with transaction.atomic():
                device.save()
        except IntegrityError:
            raise ValidationError({"name": f"Device {name!r} already exists in tenant {tenant.slug}."}) from None
        record_audit(actor, "device.create", device, tenant=tenant, after=device.snapshot())
        record_change("device", "created", device.pk, tenant=tenant, payload={"name": name, "enabled": enabled})
    return device


_EDITABLE = {"display_name", "group", "tags", "attributes", "enabled"}


def update_device(device: Device, *, actor: Actor | None = None, **changes: Any) -> Device:
    actor = actor or Actor.system()
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise ValidationError(f"These device fields cannot be changed here: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        device = Device.objects.select_for_update().get(pk=device.pk)
        before = device.snapshot()
        for field, value in changes.items():
            setattr(device, field, value)
        device.full_clean(validate_unique=False, validate_constraints=False)
        device.save()
        after = device.snapshot()
        action = "device.update"
        if set(changes) == {"enabled"}:
            action = "device.enable" if device.enabled else "device.disable"
        record_audit(actor, action, device, tenant=device.tenant, before=before, after=after)
        record_change("device", "updated", device.pk, tenant=device.tenant,
                      payload={"name": device.name, "enabled": device.enabled})
    return device


def set_device_enabled(device: Device, enabled: bool, *, actor: Actor | None = None) -> Device:
    return update_device(device, actor=actor, enabled=enabled)


def kick_device(device: Device, *, actor: Actor | None = None) -> None:
    """Ask the broker to disconnect the device's live session now (MQTT 5: DISCONNECT 0x98).

    Through the outbox, so every broker node hears it and nothing is lost if one is down;
    the device may reconnect at once (disable it to keep it out)."""
    actor = actor or Actor.system()
    with transaction.atomic():
        record_audit(actor, "device.kick", device, tenant=device.tenant, after={"online": device.online})
        record_change("device", "kick", device.pk, tenant=device.tenant, payload={"name": device.name})


def delete_device(device: Device, *, actor: Actor | None = None) -> None:
    actor = actor or Actor.system()
    with transaction.atomic():
        before = device.snapshot()
        pk, tenant, name = device.pk, device.tenant, device.name
        record_audit(actor, "device.delete", device, tenant=tenant, before=before)
        device_deleting.send(sender=Device, device=device, actor=actor)
        device.delete()
        record_change("device", "deleted", pk, tenant=tenant, payload={"name": name})


def delete_tenant(tenant: Tenant, *, actor: Actor | None = None) -> None:
    """Delete a tenant and everything in it; the broker ends its sessions and forgets its
    devices, certificates, rules and retained messages (the slug may be used again)."""
    actor = actor or Actor.system()
    with transaction.atomic():
        pk, slug = tenant.pk, tenant.slug
        # Device rows first, in id order, as the broker's write-behind locks them.
        list(Device.objects.select_for_update().filter(tenant=tenant).order_by("pk").values_list("pk", flat=True))
        record_audit(actor, "tenant.delete", tenant, tenant=None, before=_tenant_state(tenant))
        tenant.delete()
        record_change("tenant", "deleted", pk, tenant=None, payload={"slug": slug})


# --- Tenants, groups and members as the REST API changes them -----------------------------------


def update_tenant(tenant: Tenant, *, name: str | None = None, enabled: bool | None = None,
                  actor: Actor | None = None) -> Tenant:
    """Rename and/or enable/disable a tenant (enabling goes through set_tenant_enabled)."""
    actor = actor or Actor.system()
    with transaction.atomic():
        if name is not None and name != tenant.name:
            tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
            before = _tenant_state(tenant)
            tenant.name = name
            tenant.full_clean(validate_unique=False, validate_constraints=False)
            tenant.save(update_fields=["name", "updated"])
            record_audit(actor, "tenant.update", tenant, tenant=tenant, before=before, after=_tenant_state(tenant))
            record_change("tenant", "updated", tenant.pk, tenant=tenant, payload=_tenant_state(tenant))
        if enabled is not None and enabled != tenant.enabled:
            tenant = set_tenant_enabled(tenant, enabled, actor=actor)
    return tenant


def _group_state(group: DeviceGroup) -> dict[str, Any]:
    return {"name": group.name, "parent": group.parent.name if group.parent is not None else None,
            "description": group.description}


_GROUP_EDITABLE = {"name", "parent", "description"}


def update_group(group: DeviceGroup, *, actor: Actor | None = None, **changes: Any) -> DeviceGroup:
    """Rename, move (parent) or describe a group; a parent that would make a cycle is refused."""
    actor = actor or Actor.system()
    unknown = set(changes) - _GROUP_EDITABLE
    if unknown:
        raise ValidationError(f"These group fields cannot be changed here: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        group = DeviceGroup.objects.select_for_update().select_related("tenant").get(pk=group.pk)
        before = _group_state(group)
        for field, value in changes.items():
            setattr(group, field, value)
        group.full_clean(validate_unique=False, validate_constraints=False)
        try:
            with transaction.atomic():
                group.save()
        except IntegrityError:
            raise ValidationError(
                {"name": f"Group {group.name!r} already exists in tenant {group.tenant.slug}."}) from None
        after = _group_state(group)
        record_audit(actor, "group.update", group, tenant=group.tenant, before=before, after=after)
        # The broker recomputes its devices' groups ({group} in topic filters, group rules).
        record_change("group", "updated", group.pk, tenant=group.tenant, payload=after)
    return group


def delete_group(group: DeviceGroup, *, actor: Actor | None = None) -> None:
    """Delete an empty-of-children group that no ACL rule names; its devices become ungrouped."""
    actor = actor or Actor.system()
    with transaction.atomic():
        group = DeviceGroup.objects.select_for_update().select_related("tenant").get(pk=group.pk)
        children = sorted(group.children.values_list("name", flat=True)[:5])
        if children:
            raise ValidationError(
                f"Group {group.name!r} has nested groups ({', '.join(children)}); move or delete them first.",
                code="group_has_children")
        rules = group.acl_rules.count()
        if rules:
            raise ValidationError(
                f"{rules} ACL rule(s) name group {group.name!r}; change or delete them first.",
                code="group_in_use")
        tenant, pk, before = group.tenant, group.pk, _group_state(group)
        ungrouped = group.devices.count()
        record_audit(actor, "group.delete", group, tenant=tenant, before=before,
                     after={"devices_ungrouped": ungrouped})
        group.delete()
        record_change("group", "deleted", pk, tenant=tenant, payload={"name": before["name"]})


def _rank(role: str) -> int:
    from .models import ROLE_RANK

    return ROLE_RANK[Role(role)]


def _check_member_change(acting_role: str | None, old: str | None, new: str | None) -> None:
    """Nobody grants a role above their own or changes a member who ranks above them, so only
    an owner grants or takes away ownership (and an admin API key never touches an owner)."""
    if acting_role is None:
        return  # the system: the CLI and the admin site
    if new is not None and _rank(new) > _rank(acting_role):
        raise PermissionDenied(f"Your role ({acting_role}) cannot grant the {new} role.")
    if old is not None and _rank(old) > _rank(acting_role):
        raise PermissionDenied(f"Your role ({acting_role}) cannot change a member who is {old}.")


def _check_not_last_owner(membership: Membership) -> None:
    if membership.role != Role.OWNER:
        return
    # The owners' rows locked, so two admins cannot each remove "the other" last owner.
    owners = list(Membership.objects.select_for_update().filter(tenant_id=membership.tenant_id, role=Role.OWNER)
                  .values_list("pk", flat=True))
    if owners == [membership.pk]:
        raise ValidationError({"role": ValidationError(
            "This is the tenant's last owner; make someone else owner first.", code="last_owner")})


def _membership_state(membership: Membership) -> dict[str, Any]:
    return {"user": membership.user.get_username(), "role": membership.role}


def invite_member(tenant: Tenant, user: Any, role: str, *, actor: Actor | None = None,
                  acting_role: str | None = None) -> Membership:
    """Make an existing user a member (refused if they already are; change the role instead)."""
    actor = actor or Actor.system()
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; use one of {', '.join(Role.values)}."})
    _check_member_change(acting_role, None, role)
    with transaction.atomic():
        try:
            with transaction.atomic():
                membership = Membership.objects.create(user=user, tenant=tenant, role=role)
        except IntegrityError:
            raise ValidationError({"user": ValidationError(
                f"{user.get_username()} is already a member of {tenant.slug}; change their role instead.",
                code="already_member")}) from None
        state = _membership_state(membership)
        record_audit(actor, "membership.create", membership, tenant=tenant, after=state)
        record_change("membership", "created", membership.pk, tenant=tenant, payload={"user_id": user.pk, "role": role})
    return membership


def change_member_role(membership: Membership, role: str, *, actor: Actor | None = None,
                       acting_role: str | None = None) -> Membership:
    actor = actor or Actor.system()
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; use one of {', '.join(Role.values)}."})
    with transaction.atomic():
        membership = Membership.objects.select_for_update().select_related("user", "tenant").get(pk=membership.pk)
        if membership.role == role:
            return membership
        _check_member_change(acting_role, membership.role, role)
        _check_not_last_owner(membership)
        before = _membership_state(membership)
        membership.role = role
        membership.save(update_fields=["role"])
        record_audit(actor, "membership.update", membership, tenant=membership.tenant, before=before,
                     after=_membership_state(membership))
        record_change("membership", "updated", membership.pk, tenant=membership.tenant,
                      payload={"user_id": membership.user_id, "role": role})
    return membership


def remove_member(membership: Membership, *, actor: Actor | None = None, acting_role: str | None = None) -> None:
    actor = actor or Actor.system()
    with transaction.atomic():
        membership = Membership.objects.select_for_update().select_related("user", "tenant").get(pk=membership.pk)
        _check_member_change(acting_role, membership.role, None)
        _check_not_last_owner(membership)
        tenant, pk, user_id = membership.tenant, membership.pk, membership.user_id
        record_audit(actor, "membership.delete", membership, tenant=tenant, before=_membership_state(membership))
        membership.delete()
        record_change("membership", "deleted", pk, tenant=tenant, payload={"user_id": user_id})


def find_user(identifier: str) -> Any:
    """An existing user by username, or else by email (refused when several share it).

    Raises ValidationError on the field `user` (codes unknown_user, ambiguous_user): members
    are invited, never created here."""
    from django.contrib.auth import get_user_model

    identifier = identifier.strip()
    users = get_user_model().objects
    user = users.filter(username=identifier).first()
    if user is not None:
        return user
    if "@" in identifier:
        matches = list(users.filter(email__iexact=identifier)[:2])
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ValidationError({"user": ValidationError(
                f"Several users have the email {identifier!r}; invite by username.", code="ambiguous_user")})
    raise ValidationError({"user": ValidationError(
        f"No user {identifier!r}; users are created by platform staff, not here.", code="unknown_user")})
