"""TLS settings of the broker's TLS listeners."""

from __future__ import annotations

import logging
import ssl
from collections import Counter

logger = logging.getLogger("broker")

# OpenSSL verify codes (x509_vfy.h) a refused client certificate most often carries.
_VERIFY_REASONS = {
    2: "unknown CA",  # unable to get issuer certificate
    7: "bad certificate signature",
    9: "certificate not yet valid",
    10: "certificate expired",
    18: "unknown CA",  # self-signed leaf
    19: "unknown CA",  # self-signed certificate in chain
    20: "unknown CA",  # unable to get local issuer certificate
    23: "certificate revoked",
    26: "unsuitable certificate purpose",
}
_SSL_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no client certificate",
    "CERTIFICATE_REQUIRED": "no client certificate",
    "WRONG_VERSION_NUMBER": "not TLS",
    "HTTP_REQUEST": "not TLS",
    "UNSUPPORTED_PROTOCOL": "TLS version refused",
    "NO_SHARED_CIPHER": "no shared cipher",
}


def server_context(cert: str, key: str, ca: str | None) -> ssl.SSLContext:
    """TLS 1.2 or newer; with a CA file every client must present a certificate it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if ca:
        context.load_verify_locations(cafile=ca)
        context.verify_mode = ssl.CERT_REQUIRED
    # Session tickets keep reconnecting devices cheap; no renegotiation, no compression.
    context.options |= ssl.OP_NO_COMPRESSION
    return context


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> tuple[bytes, ...]:
    """The client's certificate chain in DER, leaf first (empty when it sent none).

    Python 3.13 exposes the verified chain; older versions give the leaf only.
    """
    if ssl_object is None:
        return ()
    get_chain = getattr(ssl_object, "get_verified_chain", None)
    if get_chain is not None:
        try:
            chain = get_chain()
        except (ssl.SSLError, ValueError):
            chain = None
        if chain:
            return tuple(_der(c) for c in chain)
    leaf = ssl_object.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


def _der(cert: object) -> bytes:
    if isinstance(cert, bytes):
        return cert
    public_bytes = getattr(cert, "public_bytes", None)
    if public_bytes is None:
        raise TypeError(f"unexpected certificate object {cert!r}")
    der: bytes = public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
    return der


def handshake_failure_reason(error: ssl.SSLError) -> str:
    """A short, bounded label for a failed server-side handshake."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return _VERIFY_REASONS.get(error.verify_code, "certificate verification failed")
    if isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "closed during handshake"
    reason = getattr(error, "reason", None) or ""
    return _SSL_REASONS.get(reason, "other TLS error")


def count_handshake_failures(context: ssl.SSLContext, failures: Counter[str]) -> None:
    """Count and log the handshakes this context fails.

    asyncio and uvloop drop a failed handshake silently (no protocol is ever made), so the
    count is taken in the SSL object they drive, the documented `sslobject_class` hook.
    """

    class CountingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as error:
                reason = handshake_failure_reason(error)
                failures[reason] += 1
                logger.info("TLS handshake refused: %s", reason)
                raise

    context.sslobject_class = CountingSSLObject
