from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class PkiConfig(AppConfig):
    name = "pki"
    verbose_name = "Certificates"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, pre_delete

        from devices.models import Device
        from devices.signals import tenant_created

        tenant_created.connect(_create_issuing_ca, dispatch_uid="pki.tenant_created")
        pre_delete.connect(_revoke_on_device_delete, sender=Device, dispatch_uid="pki.device_deleted")
        from .models import CertificateAuthority

        post_delete.connect(_forget_ca_key, sender=CertificateAuthority, dispatch_uid="pki.ca_deleted")


def _create_issuing_ca(sender: Any, tenant: Any, actor: Any = None, **kwargs: Any) -> None:
    # Runs inside create_tenant's transaction: a tenant never exists without its issuing CA.
    from .ca import create_issuing_ca

    create_issuing_ca(tenant, actor=actor)


def _revoke_on_device_delete(sender: Any, instance: Any, origin: Any = None, **kwargs: Any) -> None:
    """A deleted device's certificates are revoked (cessationOfOperation), so nobody can reuse them.

    Skipped when the device goes as part of a tenant deletion: the tenant's CAs and
    certificates are deleted with it.
    """
    from devices.models import Device

    if not (isinstance(origin, Device) or getattr(origin, "model", None) is Device):
        return
    from devices.audit import Actor

    from .models import CertificateStatus
    from .revocation import revoke_certificate

    for cert in instance.certificates.filter(status=CertificateStatus.ACTIVE):
        revoke_certificate(cert, "cessationOfOperation", actor=Actor.system("device deletion"))


def _forget_ca_key(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A deleted CA (its tenant was deleted) takes its key file with it, once the deletion commits."""
    from django.db import transaction

    from .keystore import discard_ca_key

    key_id = instance.key_id
    transaction.on_commit(lambda: discard_ca_key(key_id))
