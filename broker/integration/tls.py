"""The platform listeners' TLS, reloadable live: mutual TLS for devices, server-only TLS for
service clients (API keys); forward-secret AEAD suites only on both."""

from __future__ import annotations

import ssl

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


def device_server_context(chain_path: str, key_path: str, client_ca_bundle: str) -> ssl.SSLContext:
    """Server context for devices: a client certificate chaining to a platform CA is required."""
    context = _server_context(chain_path, key_path)
    context.load_verify_locations(cadata=client_ca_bundle)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def service_server_context(chain_path: str, key_path: str) -> ssl.SSLContext:
    """Server context for service clients: the same server certificate, and no client
    certificate is asked for (the API key in CONNECT is the credential)."""
    context = _server_context(chain_path, key_path)
    context.verify_mode = ssl.CERT_NONE
    return context


class TlsReloader:
    """Changes the live contexts: new handshakes see new CAs and a renewed server certificate.

    `context` is the devices' (it learns new CAs); `others` only share the server certificate.
    """

    def __init__(self, context: ssl.SSLContext, *others: ssl.SSLContext) -> None:
        self.context = context
        self.others = others

    def add_trust(self, bundle: str) -> None:
        # Trust only grows here: a rotated-out CA stays valid for the certificates it signed,
        # and revocation is enforced by the identity index, not by removing CAs.
        self.context.load_verify_locations(cadata=bundle)

    def replace_certificate(self, chain_path: str, key_path: str) -> None:
        for context in (self.context, *self.others):
            context.load_cert_chain(chain_path, key_path)
