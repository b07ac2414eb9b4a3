"""The ACL API: rules, explain and impact, mounted under /api/v1/ through acl.urls."""
