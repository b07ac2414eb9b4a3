from django.apps import AppConfig


class AclConfig(AppConfig):
    name = "acl"
    verbose_name = "Topic ACLs"

    def ready(self) -> None:
        from devices.models import Device, Tenant
        from devices.signals import device_deleting, tenant_created

        from .services import on_device_deleting, on_tenant_created

        tenant_created.connect(on_tenant_created, sender=Tenant, dispatch_uid="acl.default_rules")
        device_deleting.connect(on_device_deleting, sender=Device, dispatch_uid="acl.device_rules")
