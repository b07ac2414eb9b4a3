"""The platform listeners' TLS, reloadable live: mutual TLS for devices, server-only TLS for
service clients (API keys); forward-secret AEAD suites only on both."""

from __future__ import annotations

import os
import ssl
import tempfile

# TLS 1.2 suites with ECDHE key exchange and an AEAD cipher; TLS 1.3 suites are all of that.
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
])


def _server_context(chain_path: str, key_path: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(chain_path, key_path)
    return context


def device_server_context(chain_path: str, key_path: str, client_ca_bundle: str,
                          crl_bundle: str | None = None) -> ssl.SSLContext:
    """Server context for devices: a client certificate chaining to a platform CA is required,
    and with `crl_bundle` (a CRL for every CA in `client_ca_bundle`) one its CA revoked is
    refused in the handshake with the certificate_revoked alert."""
    context = _server_context(chain_path, key_path)
    context.load_verify_locations(cadata=client_ca_bundle)
    context.verify_mode = ssl.CERT_REQUIRED
    if crl_bundle is not None:
        # A CA without a CRL now fails every handshake of its certificates: the bundle
        # has one for every CA, and a CA added later comes with its own.
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        _load_crls(context, crl_bundle)
    return context


def _load_crls(context: ssl.SSLContext, crl_bundle: str) -> None:
    """Python loads CRLs only from a file (`cadata` takes certificates alone)."""
    if not crl_bundle:
        return
    fd, path = tempfile.mkstemp(prefix="roost-crls-", suffix=".pem")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(crl_bundle)
        context.load_verify_locations(cafile=path)
    finally:
        os.unlink(path)


def service_server_context(chain_path: str, key_path: str) -> ssl.SSLContext:
    """Server context for service clients: the same server certificate, and no client
    certificate is asked for (the API key in CONNECT is the credential)."""
    context = _server_context(chain_path, key_path)
    context.verify_mode = ssl.CERT_NONE
    return context


class DeviceTls:
    """The devices' TLS, changed live: new handshakes see new CAs, new CRLs and a renewed
    server certificate.

    A change builds a whole new context and every handshake switches to the newest one in
    the SNI callback (OpenSSL calls it for every ClientHello, with or without a server
    name). Adding CRLs to one context instead would keep every old CRL, and OpenSSL could
    pick an old one: it prefers the latest thisUpdate, and two CRLs of a CA signed within
    the same second tie.
    """

    def __init__(self, chain_path: str, key_path: str, ca_bundle: str, crl_bundle: str | None) -> None:
        self._chain, self._key = chain_path, key_path
        self._cas = ca_bundle
        self._crls = crl_bundle
        self.context = self._build()  # the listener's; handshakes start here
        self.context.sni_callback = self._switch
        self._current = self.context

    def _build(self) -> ssl.SSLContext:
        return device_server_context(self._chain, self._key, self._cas, self._crls)

    def _switch(self, ssl_object: ssl.SSLObject | ssl.SSLSocket, _server_name: str | None,
                context: ssl.SSLContext) -> None:
        current = self._current
        if current is not context:
            ssl_object.context = current

    def _rebuild(self) -> None:
        self._current = self._build()

    def add_trust(self, bundle: str) -> None:
        # Trust only grows: a rotated-out CA stays valid for the certificates it signed, and
        # revocation is enforced by CRLs and the identity index, not by removing CAs.
        if bundle not in self._cas:
            self._cas += bundle
        self._rebuild()

    def set_crls(self, crl_bundle: str) -> None:
        self._crls = crl_bundle
        self._rebuild()

    def set_certificate(self, chain_path: str, key_path: str) -> None:
        self._chain, self._key = chain_path, key_path
        self.context.load_cert_chain(chain_path, key_path)
        self._rebuild()


class TlsReloader:
    """Applies the registry's changes to the live TLS: the devices' (CAs, CRLs, server
    certificate); `others` only share the server certificate."""

    def __init__(self, devices: DeviceTls, *others: ssl.SSLContext) -> None:
        self.devices = devices
        self.others = others

    def add_trust(self, bundle: str) -> None:
        self.devices.add_trust(bundle)

    def add_crls(self, crl_bundle: str) -> None:
        self.devices.set_crls(crl_bundle)

    def replace_certificate(self, chain_path: str, key_path: str) -> None:
        self.devices.set_certificate(chain_path, key_path)
        for context in self.others:
            context.load_cert_chain(chain_path, key_path)


# Device certificates, whoever signed them ---------------------------------------------------
#
# What TLS can say from Python: OpenSSL verifies the chain during the handshake and sends the
# alert itself for what it checks — certificate_expired, unknown_ca, bad_certificate (bad
# signature) and unsupported_certificate when an extended key usage or key usage is present
# but does not allow client authentication (the server-side purpose check, verify code 26).
# With the platform's CRLs loaded it also sends certificate_revoked for a revoked leaf.
# Python's ssl module exposes no verify callback and no way to send an alert of our choosing
# after the handshake, so what OpenSSL lets through — a leaf that is a CA, a leaf with no
# extended key usage at all, control characters in the subject, a certificate revoked a
# moment ago whose CRL is still on its way — is refused at CONNECT, with a reason code (see
# `certificate_problem` and IdentityIndex).

_CONTROL = frozenset(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)))
_PROBLEMS: dict[bytes, str | None] = {}
_PROBLEMS_MAX = 4096


def certificate_problem(der: bytes) -> str | None:
    """Why a client certificate is not a device certificate, or None when it is one.

    A device certificate is an end entity (no CA basic constraint, no certificate or CRL
    signing), made for TLS client authentication (the clientAuth extended key usage, and a
    key usage allowing signatures when there is one), with a subject of printable UTF-8.
    Checked on every CONNECT whatever CA signed it, so the answer is kept per certificate.
    """
    known = _PROBLEMS.get(der, False)
    if known is not False:
        return known  # type: ignore[return-value]
    problem = _problem(der)
    if len(_PROBLEMS) >= _PROBLEMS_MAX:
        _PROBLEMS.clear()
    _PROBLEMS[der] = problem
    return problem


def _problem(der: bytes) -> str | None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        cert = x509.load_der_x509_certificate(der)
        subject = [attribute.value for attribute in cert.subject]
    except (ValueError, UnicodeDecodeError):
        return "malformed certificate or subject"
    for value in subject:
        if isinstance(value, bytes) or any(ch in _CONTROL for ch in value):
            return "control or non-UTF-8 characters in the subject"
    try:
        extensions = cert.extensions
    except ValueError:
        return "malformed certificate extensions"
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.ca:
        return "CA certificate"
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and (usage.key_cert_sign or usage.crl_sign or not usage.digital_signature):
        return "wrong key usage"
    try:
        purposes = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "no clientAuth extended key usage"
    if ExtendedKeyUsageOID.CLIENT_AUTH not in purposes:
        return "no clientAuth extended key usage"
    return None
