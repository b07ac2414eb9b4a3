"""Registry signals other apps hook into (sent inside the creating transaction)."""

from django.dispatch import Signal

# Sent with sender=Tenant, tenant=..., actor=... right after a tenant is created, inside the
# same transaction: pki creates the tenant's issuing CA, acl installs the default rules.
tenant_created = Signal()
