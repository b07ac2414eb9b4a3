"""TLS settings of the broker's TLS listeners."""

from __future__ import annotations

import ssl


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
