"""Registry signals other apps hook into (sent inside the creating transaction)."""

from django.dispatch import Signal

# Sent with sender=Tenant, tenant=..., actor=... right after a tenant is created, inside the
# same transaction: pki creates the tenant's issuing CA, acl installs the default rules.
tenant_created = Signal()

# Sent with sender=Device, device=..., actor=... just before a device is deleted, inside the
# deleting transaction: acl removes the device's own rules with their change events, so the
# broker forgets them (a cascade would remove them silently).
device_deleting = Signal()
