"""Registry changes for the broker-on-the-platform tests, made in a process of their own.

The broker under test runs as a subprocess on its own database (a SQLite file or a fresh
PostgreSQL database), which pytest-django's test database is not. This script is the test
suite's hand on that database: one Django process, started once, that prepares the platform
(`manage.py up --prepare-only`) and then performs registry changes through the same service
functions the portal, the API and the CLI use, so every change writes its outbox row.

Protocol: one JSON object per line on stdin, `{"op": NAME, "args": {...}}`; one JSON reply
per line on the original stdout, `{"ok": true, "result": ...}` or `{"ok": false, "error": ...}`.
Anything else the platform prints goes to stderr.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


def main() -> None:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # keep stray output off the reply channel
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "roost.settings")
    import django

    django.setup()
    ops = {**_operations(), **_user_operations()}
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            result = ops[request["op"]](**request.get("args", {}))
            reply = {"ok": True, "result": result}
        except Exception as exc:  # reported to the test, which decides what it means
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply, default=str) + "\n")


def _operations() -> dict[str, Callable[..., Any]]:
    from django.core.management import call_command

    from acl.models import AclRule
    from acl.services import create_rule, update_rule
    from broker.integration.models import RetainedMessage
    from broker.integration.services import clear_retained
    from devices.audit import Actor
    from devices.models import Device, Tenant
    from devices.services import (
        create_device,
        create_tenant,
        delete_device,
        set_device_enabled,
        set_tenant_enabled,
    )
    from pki.issuance import issue_with_generated_key
    from pki.models import Certificate
    from pki.revocation import revoke_certificate

    def tenant_of(slug: str) -> Tenant:
        return Tenant.objects.get(slug=slug)

    def device_of(tenant: str, name: str) -> Device:
        return Device.objects.select_related("tenant").get(tenant__slug=tenant, name=name)

    def prepare() -> str:
        out = io.StringIO()
        call_command("up", prepare_only=True, stdout=out, stderr=out)
        return out.getvalue()

    def tenant_create(slug: str) -> int:
        return create_tenant(slug).pk

    def tenant_delete(slug: str) -> None:
        from devices.services import delete_tenant

        delete_tenant(tenant_of(slug))

    def tenant_enable(slug: str, enabled: bool) -> None:
        set_tenant_enabled(tenant_of(slug), enabled)

    def device_create(tenant: str, name: str) -> int:
        return create_device(tenant_of(tenant), name).pk

    def device_enable(tenant: str, name: str, enabled: bool) -> None:
        set_device_enabled(device_of(tenant, name), enabled)

    def device_delete(tenant: str, name: str) -> None:
        delete_device(device_of(tenant, name))

    def device_state(tenant: str, name: str) -> dict[str, Any]:
        device = device_of(tenant, name)
        return {"id": device.pk, "online": device.online, "last_ip": device.last_ip,
                "protocol_version": device.protocol_version,
                "last_seen": device.last_seen.isoformat() if device.last_seen else None}

    def cert_issue(tenant: str, name: str, out: str) -> dict[str, str]:
        """Issue through pki and write the bundle the way `manage.py cert issue` does."""
        issued = issue_with_generated_key(device_of(tenant, name))
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ca.pem").write_text(issued.root_pem)
        (folder / "device.pem").write_text(issued.certificate_pem + issued.chain_pem)
        key = folder / "device.key"
        key.write_text(issued.private_key_pem)
        key.chmod(0o600)
        return {"serial": issued.certificate.serial, "fingerprint": issued.certificate.fingerprint}

    def cert_issue_expired(tenant: str, name: str, out: str) -> None:
        """A certificate the tenant's real issuing CA signed, valid until yesterday.

        pki never issues one (its dates come from the clock), so it is signed here.
        """
        from datetime import timedelta

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        from django.utils import timezone

        from pki import keystore
        from pki.ca import active_issuing_ca

        ca = active_issuing_ca(tenant_of(tenant))
        ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
        key = ec.generate_private_key(ec.SECP256R1())
        now = timezone.now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, tenant),
                                     x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=30))
            .not_valid_after(now - timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(keystore.load_ca_key(ca.key_file), hashes.SHA256())
        )
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "device.pem").write_text(cert.public_bytes(serialization.Encoding.PEM).decode()
                                           + ca.certificate_pem)
        (folder / "device.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    def cert_craft(tenant: str, name: str, out: str, flaw: str) -> None:
        from tests.broker.integration.crafted_certs import craft

        craft(tenant_of(tenant), name, out, flaw)

    def cert_revoke(serial: str) -> str:
        return revoke_certificate(Certificate.objects.get(serial=serial), "key_compromise").status

    def rule_create(tenant: str, device: str | None = None, **fields: Any) -> int:
        if device is not None:
            fields["subject_device"] = device_of(tenant, device)
        return create_rule(tenant_of(tenant), **fields).pk

    def rules_of(tenant: str) -> list[dict[str, Any]]:
        return [{"id": r.pk, **r.snapshot()} for r in AclRule.objects.filter(tenant__slug=tenant)]

    def rule_update(rule_id: int, **changes: Any) -> None:
        update_rule(AclRule.objects.get(pk=rule_id), **changes)

    def retained(tenant: str, topic: str) -> dict[str, Any] | None:
        row = RetainedMessage.objects.filter(tenant__slug=tenant, topic=topic).first()
        if row is None:
            return None
        return {"payload": bytes(row.payload).decode("utf-8", "replace"), "qos": row.qos,
                "publisher_id": row.publisher_id, "publisher_name": row.publisher_name}

    def retained_clear(tenant: str, topic: str) -> None:
        clear_retained(tenant_of(tenant), topic, actor=Actor.system())

    def api_key_create(tenant: str, role: str, name: str = "", expires_days: int | None = None) -> str:
        from devices.apikeys import create_api_key

        return create_api_key(tenant_of(tenant), role=role, name=name, expires_days=expires_days).key

    def api_key_expire_in(prefix: str, seconds: float) -> None:
        """Move a key's expiry to now + seconds (negative: already past), with its change event.

        No service changes an expiry (keys get theirs at creation), so this is the test's
        stand-in for the clock having moved on.
        """
        from datetime import timedelta

        from django.db import transaction
        from django.utils import timezone

        from devices.changes import record_change
        from devices.models import ApiKey

        with transaction.atomic():
            api_key = ApiKey.objects.select_related("tenant").get(prefix=prefix)
            api_key.expires_at = timezone.now() + timedelta(seconds=seconds)
            api_key.save(update_fields=["expires_at"])
            record_change("api_key", "updated", api_key.pk, tenant=api_key.tenant, payload={"prefix": prefix})

    return {
        "retained_clear": retained_clear, "api_key_create": api_key_create, "device_delete": device_delete,
        "api_key_expire_in": api_key_expire_in, "cert_craft": cert_craft,
        "prepare": prepare, "tenant_create": tenant_create, "tenant_enable": tenant_enable, "tenant_delete": tenant_delete,
        "device_create": device_create, "device_enable": device_enable, "device_state": device_state,
        "cert_issue": cert_issue, "cert_issue_expired": cert_issue_expired, "cert_revoke": cert_revoke, "rule_create": rule_create,
        "rules_of": rules_of, "rule_update": rule_update, "retained": retained,
    }



def _user_operations() -> dict[str, Callable[..., Any]]:
    """Portal users, memberships and sign-in sessions (for the /mqtt endpoint's tests)."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )

    from devices.models import Membership, Tenant
    from devices.services import add_member, change_member_role, remove_member

    users = get_user_model()

    def user_create(username: str, password: str, tenants: dict[str, str] | None = None,
                    staff: bool = False) -> int:
        user = users.objects.create_user(username, password=password, is_staff=staff)
        for slug, role in (tenants or {}).items():
            add_member(Tenant.objects.get(slug=slug), user, role)
        return int(user.pk)

    def session_create(username: str) -> str:
        """A signed-in session exactly as django.contrib.auth.login leaves it; its key."""
        user = users.objects.get(username=username)
        store = import_module(settings.SESSION_ENGINE).SessionStore()
        store[SESSION_KEY] = user._meta.pk.value_to_string(user)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        return str(store.session_key)

    def session_delete(key: str) -> None:
        import_module(settings.SESSION_ENGINE).SessionStore(key).delete()

    def member_role(username: str, tenant: str, role: str) -> None:
        change_member_role(Membership.objects.get(user__username=username, tenant__slug=tenant), role)

    def member_remove(username: str, tenant: str) -> None:
        remove_member(Membership.objects.get(user__username=username, tenant__slug=tenant))

    def user_set_active(username: str, active: bool) -> None:
        users.objects.filter(username=username).update(is_active=active)

    def user_set_password(username: str, password: str) -> None:
        user = users.objects.get(username=username)
        user.set_password(password)
        user.save(update_fields=["password"])

    return {"user_create": user_create, "session_create": session_create, "session_delete": session_delete,
            "member_role": member_role, "member_remove": member_remove, "user_set_active": user_set_active,
            "user_set_password": user_set_password}


if __name__ == "__main__":
    main()
