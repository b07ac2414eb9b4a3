"""The PKI's REST API: device certificates, the tenant's certificates, enrollment tokens and
device self-enrollment. Views validate input shape and call pki's services."""
