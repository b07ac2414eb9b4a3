"""Client certificates that are not device certificates are refused whoever signed them.

Every certificate here is made wrong by the test itself and signed by the tenant's real
issuing CA (tests/broker/integration/crafted_certs.py). OpenSSL refuses at the handshake what
it checks (an extended key usage without clientAuth: unsupported_certificate); Python cannot
send an alert of its own after the handshake, so the rest is refused at CONNECT with 0x87
(3.1.1: 5), counted under roost_broker_authentication_failures_total{reason}.
"""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import pytest

from tests.broker.integration.platform_harness import (
    REVOKED_IN_HANDSHAKE,
    Bundle,
    Platform,
    PlatformBroker,
    connack_code,
    eventually,
    refusal,
)

TENANT = "it-hard"


@pytest.fixture(scope="module", autouse=True)
def good(platform: Platform) -> Bundle:
    platform.call("tenant_create", slug=TENANT)
    return platform.device(TENANT, "proper")


def _crafted(platform: Platform, flaw: str, name: str = "proper") -> tuple[str, str]:
    folder = platform.bundles / TENANT / f"crafted-{flaw}-{uuid.uuid4().hex[:6]}"
    platform.call("cert_craft", tenant=TENANT, name=name, out=str(folder), flaw=flaw)
    return str(folder / "device.pem"), str(folder / "device.key")


def _refusals(broker: PlatformBroker, reason: str) -> float:
    return broker.metric("roost_broker_authentication_failures_total", reason=reason)


@pytest.mark.parametrize(("flaw", "reason"), [
    ("ca", "CA certificate"),
    ("no_eku", "no clientAuth extended key usage"),
    ("cert_sign_usage", "wrong key usage"),
    ("control_subject", "control or non-UTF-8 characters in the subject"),
])
def test_a_certificate_that_is_not_a_device_certificate_is_refused_at_connect_as_not_authorized(
        broker: PlatformBroker, platform: Platform, good: Bundle, flaw: str, reason: str) -> None:
    cert, key = _crafted(platform, flaw)
    before = _refusals(broker, reason)
    assert connack_code(broker.port, good.ca, cert, key, "proper", level=5) == 0x87
    assert connack_code(broker.port, good.ca, cert, key, "proper", level=4) == 5
    assert eventually(lambda: _refusals(broker, reason) == before + 2)


def test_a_well_formed_certificate_the_ca_signed_but_pki_never_issued_is_refused_as_unknown(
        broker: PlatformBroker, platform: Platform, good: Bundle) -> None:
    # The control for the cases above: the crafting itself yields a certificate the checks
    # let through, so what refuses them is their flaw.
    cert, key = _crafted(platform, "none")
    before = _refusals(broker, "unknown certificate")
    assert connack_code(broker.port, good.ca, cert, key, "proper", level=5) == 0x86
    assert eventually(lambda: _refusals(broker, "unknown certificate") == before + 1)
    assert connack_code(broker.port, good.ca, good.cert, good.key, "proper", level=5) == 0


def test_a_certificate_only_for_server_authentication_fails_the_tls_handshake(
        broker: PlatformBroker, platform: Platform, good: Bundle) -> None:
    cert, key = _crafted(platform, "server_eku")
    reason = "unsuitable certificate purpose"
    before = broker.metric("roost_broker_tls_handshake_failures_total", reason=reason)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connack_code(broker.port, good.ca, cert, key, "proper", level=5)
    assert eventually(lambda: broker.metric("roost_broker_tls_handshake_failures_total",
                                            reason=reason) == before + 1)


def test_a_subject_that_is_not_utf8_cannot_even_be_presented_and_is_refused_by_the_check(
        platform: Platform, tmp_path: Path) -> None:
    # OpenSSL will not parse a name that is not valid UTF-8 (the client cannot load it, a
    # server would fail the handshake decoding it); the broker's own check says so as well.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from broker.integration.tls import certificate_problem

    cert, key = _crafted(platform, "non_utf8_subject")
    with pytest.raises(ssl.SSLError):
        ssl.create_default_context().load_cert_chain(cert, key)
    first, proper = Path(cert).read_text().split("-----END CERTIFICATE-----")[:2]
    der = ssl.PEM_cert_to_DER_cert(first + "-----END CERTIFICATE-----\n")
    assert certificate_problem(der) == "malformed certificate or subject"
    issuer = x509.load_pem_x509_certificate((proper + "-----END CERTIFICATE-----\n").encode())
    assert certificate_problem(issuer.public_bytes(serialization.Encoding.DER)) == "CA certificate"


def test_a_revoked_certificate_is_refused_in_the_tls_handshake_with_certificate_revoked(
        broker: PlatformBroker, platform: Platform) -> None:
    bundle = platform.device(TENANT, "revoked-h")
    args = (broker.port, bundle.ca, bundle.cert, bundle.key, "revoked-h")
    assert eventually(lambda: connack_code(*args, level=5) == 0)
    before = _handshake_failures(broker, "certificate revoked")
    platform.call("cert_revoke", serial=bundle.serial)
    assert eventually(lambda: refusal(*args, level=5) == REVOKED_IN_HANDSHAKE)
    assert refusal(*args, level=4) == REVOKED_IN_HANDSHAKE
    assert eventually(lambda: _handshake_failures(broker, "certificate revoked") >= before + 2)


def _handshake_failures(broker: PlatformBroker, reason: str) -> float:
    return broker.metric("roost_broker_tls_handshake_failures_total", reason=reason)


def test_a_revoked_certificate_that_passes_tls_is_refused_at_connect_as_banned(good: Bundle) -> None:
    """Between the revocation and its CRL reaching the TLS context the registry refuses the
    certificate on its own: 0x8A (3.1.1: code 5)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from broker.integration.identities import (
        BANNED,
        REVOKED,
        CertRecord,
        IdentityIndex,
        Refusal,
        fingerprint_of,
    )

    leaf = x509.load_pem_x509_certificate(Path(good.cert).read_bytes())  # the chain's first
    der = leaf.public_bytes(serialization.Encoding.DER)
    index = IdentityIndex()
    now = datetime.now(UTC)
    index.certs[fingerprint_of(der)] = CertRecord(fingerprint_of(der), "01", 1, 1, REVOKED,
                                                  now - timedelta(days=1), now + timedelta(days=1))
    result = index.authenticate(der, "proper", None)
    assert isinstance(result, Refusal) and (result.reason_code, result.why) == (BANNED, "certificate revoked")
