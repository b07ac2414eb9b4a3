from django.apps import AppConfig


class AclConfig(AppConfig):
    name = "acl"
    verbose_name = "Topic ACLs"

    def ready(self) -> None:
        from devices.models import Tenant
        from devices.signals import tenant_created

        from .services import on_tenant_created

        tenant_created.connect(on_tenant_created, sender=Tenant, dispatch_uid="acl.default_rules")
