"""Signed, short-lived principals for the internal bridge listener (the dashboard's path in).

The web side signs "this user, in this tenant, with this role" with the server secret; the
broker accepts a bridge connection only with such a token as its MQTT password, and only
for a few minutes after it was made. Django's signing module does the HMAC and the expiry.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signing

SALT = "roost.broker.bridge.v1"
DEFAULT_MAX_AGE = 300


@dataclass(frozen=True, slots=True)
class BridgePrincipal:
    tenant: str
    user_id: int
    username: str
    role: str


def sign_principal(principal: BridgePrincipal) -> str:
    return signing.dumps(
        {"t": principal.tenant, "u": principal.user_id, "n": principal.username, "r": principal.role},
        salt=SALT, compress=False,
    )


def verify_principal(token: str, max_age: int = DEFAULT_MAX_AGE) -> BridgePrincipal | None:
    try:
        data = signing.loads(token, salt=SALT, max_age=max_age)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    try:
        return BridgePrincipal(str(data["t"]), int(data["u"]), str(data["n"]), str(data["r"]))
    except (KeyError, TypeError, ValueError):
        return None
