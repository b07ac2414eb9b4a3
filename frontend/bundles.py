"""The one-time download of a newly issued certificate with its generated private key.

The private key exists only in the issuance's answer (pki never stores it). The portal keeps
it for a few minutes in the server-side cache under a random token, for the signed-in user
who asked for it, and forgets it at the first download: the .p12 or the zip, whichever comes
first. Nothing of it goes into the session or the database.
"""

from __future__ import annotations

import io
import secrets
import shlex
import zipfile
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from devices.models import Device
from pki.bundles import add_to_zip
from pki.issuance import IssuedCertificate

TTL_SECONDS = 15 * 60


@dataclass(frozen=True)
class PendingBundle:
    user_id: int
    tenant_id: int
    device_name: str
    issued: IssuedCertificate

    @property
    def has_key(self) -> bool:
        return bool(self.issued.private_key_pem)

    @property
    def p12(self) -> bytes:
        return self.issued.pkcs12

    @property
    def passphrase(self) -> str:
        return self.issued.pkcs12_passphrase

    def zip(self) -> bytes:
        """NAME/ca.pem, device.pem, chain.pem and (for a generated key) device.key: the files
        `roost cert issue` writes and the API's bundle holds."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            add_to_zip(archive, self.issued, folder=self.device_name)
        return buffer.getvalue()


def _key(token: str) -> str:
    return f"portal-bundle:{token}"


def keep(user: Any, device: Device, issued: IssuedCertificate) -> str:
    """Hold the bundle for `user` and return the token that names it."""
    token = secrets.token_urlsafe(24)
    bundle = PendingBundle(user_id=user.pk, tenant_id=device.tenant_id, device_name=device.name, issued=issued)
    cache.set(_key(token), bundle, TTL_SECONDS)
    return token


def peek(user: Any, device: Device, token: str) -> PendingBundle | None:
    """The bundle if it is still held, for this user and this device; it stays held."""
    bundle = cache.get(_key(token))
    if not isinstance(bundle, PendingBundle):
        return None
    if (bundle.user_id, bundle.tenant_id, bundle.device_name) != (user.pk, device.tenant_id, device.name):
        return None
    return bundle


def take(user: Any, device: Device, token: str) -> PendingBundle | None:
    """The bundle, forgotten as it is handed out; None if it is gone or someone else's.

    Of two concurrent downloads only the one whose delete removed the entry gets it.
    """
    bundle = peek(user, device, token)
    if bundle is None or not cache.delete(_key(token)):
        return None
    return bundle


def mosquitto_command(device_name: str) -> str:
    """The line that tries the new certificate against the platform's broker."""
    host = settings.ROOST_BROKER_HOSTNAMES[0] if settings.ROOST_BROKER_HOSTNAMES else "localhost"
    name = shlex.quote(device_name)
    return (f"mosquitto_pub --cafile ca.pem --cert device.pem --key device.key "
            f"-h {shlex.quote(host)} -p {settings.ROOST_BROKER_PORT} -i {name} "
            f"-t {shlex.quote(f'devices/{device_name}/hello')} -m hi")
