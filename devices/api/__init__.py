"""The registry's REST API: tenants, devices, groups, members, API keys, audit events, imports."""
