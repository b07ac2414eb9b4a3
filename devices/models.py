"""The device registry: tenants, memberships, groups, devices, audit trail, change outbox."""

from __future__ import annotations

import uuid
from typing import Any, Self, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import models, transaction

from .validators import validate_device_name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"
    VIEWER = "viewer", "Viewer"


# Higher rank includes the rights of every lower one.
ROLE_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3, Role.OWNER: 4}


class TenantQuerySet(models.QuerySet["Tenant"]):
    def visible_to(self, user: Any) -> Self:
        if user.is_superuser:
            return self
        return self.filter(memberships__user=user).distinct()


class Tenant(models.Model):
    slug = models.SlugField(max_length=63, unique=True, validators=[validate_slug])
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


_Scoped = TypeVar("_Scoped", bound=models.Model)


class TenantScopedQuerySet(models.QuerySet[_Scoped]):
    """Rows of a model with a `tenant` foreign key."""

    def for_tenant(self, tenant: Tenant) -> Self:
        return self.filter(tenant=tenant)

    def visible_to(self, user: Any) -> Self:
        if user.is_superuser:
            return self
        return self.filter(tenant__memberships__user=user).distinct()


class DeviceGroup(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=128, validators=[validate_device_name])
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    description = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="group_unique_tenant_name")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"

    def clean(self) -> None:
        if self.parent is None:
            return
        if self.parent.tenant_id != self.tenant_id:
            raise ValidationError({"parent": "The parent group belongs to another tenant."})
        seen = {self.pk} if self.pk else set()
        node: DeviceGroup | None = self.parent
        while node is not None:
            if node.pk in seen:
                raise ValidationError({"parent": "This parent would make the groups a cycle."})
            seen.add(node.pk)
            node = node.parent

    def ancestors(self) -> list[DeviceGroup]:
        """This group's parents, nearest first."""
        chain: list[DeviceGroup] = []
        node = self.parent
        while node is not None and len(chain) < 64:
            chain.append(node)
            node = node.parent
        return chain

    def descendant_ids(self) -> set[int]:
        """Ids of this group and every group nested under it."""
        ids = {self.pk}
        frontier = [self.pk]
        while frontier:
            frontier = list(
                DeviceGroup.objects.filter(parent_id__in=frontier).exclude(pk__in=ids).values_list("pk", flat=True)
            )
            ids.update(frontier)
        return ids


class Device(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="devices")
    name = models.CharField(
        max_length=128,
        validators=[validate_device_name],
        help_text="The MQTT client id: letters, digits and . _ : - (first a letter or digit).",
    )
    display_name = models.CharField(max_length=200, blank=True)
    group = models.ForeignKey(DeviceGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices")
    tags = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # Filled by the broker (batched), never by the portal.
    online = models.BooleanField(default=False)
    last_seen = models.DateTimeField(null=True, blank=True)
    last_ip = models.GenericIPAddressField(null=True, blank=True)
    protocol_version = models.PositiveSmallIntegerField(null=True, blank=True)

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="device_unique_tenant_name")]
        indexes = [models.Index(fields=["tenant", "online"])]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"

    def clean(self) -> None:
        if self.group is not None and self.group.tenant_id != self.tenant_id:
            raise ValidationError({"group": "The group belongs to another tenant."})
        if not isinstance(self.tags, list) or not all(isinstance(t, str) for t in self.tags):
            raise ValidationError({"tags": "Tags must be a list of strings."})
        if not isinstance(self.attributes, dict):
            raise ValidationError({"attributes": "Attributes must be a JSON object."})

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        with transaction.atomic():
            # The row is locked before the rows pointing at it (events, retained messages)
            # are touched. The broker's write-behind locks the devices it writes about first
            # too, so the two wait for each other in one order and never deadlock.
            list(Device.objects.select_for_update().filter(pk=self.pk).values_list("pk", flat=True))
            return super().delete(*args, **kwargs)

    def snapshot(self) -> dict[str, Any]:
        """The registry fields, as recorded in audit events."""
        return {
            "name": self.name,
            "display_name": self.display_name,
            "group": self.group.name if self.group is not None else None,
            "tags": list(self.tags),
            "attributes": dict(self.attributes),
            "enabled": self.enabled,
        }


class ActorKind(models.TextChoices):
    USER = "user", "User"
    API_KEY = "api_key", "API key"
    SYSTEM = "system", "System"


class AuditEvent(models.Model):
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events")
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.target_type} {self.target_repr}"


class ChangeEvent(models.Model):
    """A transactional outbox row: written with the change it describes, tailed by the broker."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=32, db_index=True)
    op = models.CharField(max_length=16)
    object_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.id} {self.kind} {self.op} {self.object_id}"


class ApiKeyRole(models.TextChoices):
    """The roles an API key may hold: those of memberships, below owner."""

    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


class ApiKey(models.Model):
    """A tenant's credential for scripts and back ends: only a hash of the secret is stored.

    The key reads `rk_<12 hex>_<secret>`; the first part is the public prefix used to find the
    row (and as the MQTT username of a service client), the whole key is hashed.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=ApiKeyRole.choices, default=ApiKeyRole.VIEWER)
    prefix = models.CharField(max_length=32, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_by = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "-created", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name} ({self.prefix})"

    @property
    def label(self) -> str:
        """How the key appears as an actor in the audit trail."""
        return f"api-key:{self.name}"

    def is_usable(self, now: Any = None) -> bool:
        from django.utils import timezone

        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "prefix": self.prefix,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


class ImportJobState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    """A bulk import of devices (and optionally their certificates), run by the worker.

    The uploaded file and the result bundle live under ROOST_DATA_DIR/jobs/<id>/ (see
    `devices.imports.job_dir`), never in the database. `done` counts the rows handled so far,
    whatever their outcome: `created + existing + failed == done`, and `done == total` at the end.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.CharField(max_length=200, help_text="The actor's label, as in the audit trail.")
    created_by_kind = models.CharField(max_length=16, choices=ActorKind.choices, default=ActorKind.SYSTEM)
    created_by_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=16, choices=ImportJobState.choices, default=ImportJobState.PENDING,
                             db_index=True)
    input_format = models.CharField(max_length=8, help_text="csv or json.")
    input_name = models.CharField(max_length=200, blank=True, help_text="The uploaded file's name, if any.")
    options = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    existing_count = models.PositiveIntegerField(default=0)
    certificate_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True,
                              help_text="The first errors: {row, name, code, message, field}.")
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds spent per phase.")
    message = models.TextField(blank=True, help_text="Why the job failed as a whole, if it did.")
    has_bundle = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.tenant.slug} import {self.id} ({self.state})"

    @property
    def issue_certs(self) -> bool:
        return bool((self.options or {}).get("issue_certs"))

    @property
    def is_finished(self) -> bool:
        return self.state in (ImportJobState.DONE, ImportJobState.FAILED)
