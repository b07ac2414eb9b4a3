"""TLS of the broker's TLS listeners: settings, and the TLS session of one connection.

The session runs OpenSSL over memory buffers that the connection's protocol feeds from a
plain transport, instead of the event loop's TLS transport: that one keeps a 256 KiB read
buffer per connection (uvloop) whose touched pages cost about 15 KiB of RSS for every idle
device, and it drops a failed handshake without telling anyone why.
"""

from __future__ import annotations

import contextlib
import ssl

# OpenSSL verify codes (x509_vfy.h) a refused client certificate most often carries.
_VERIFY_REASONS = {
    2: "unknown CA",  # unable to get issuer certificate
    3: "no CRL for the CA",
    7: "bad certificate signature",
    9: "certificate not yet valid",
    10: "certificate expired",
    12: "CRL expired",
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
# OpenSSL hands out at most one record (16 KiB of plaintext) per read.
_RECORD = 16384


def server_context(cert: str, key: str, ca: str | None, crl: str | None = None,
                   chain_ca: str | None = None) -> ssl.SSLContext:
    """TLS 1.2 or newer; with a CA file every client must present a certificate it signed,
    and with a CRL file one its CA has not revoked. A `chain_ca` only supplies the
    intermediates OpenSSL sends along with the server certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if chain_ca and not ca:
        context.load_verify_locations(cafile=chain_ca)  # verify_mode stays CERT_NONE
    if ca:
        context.load_verify_locations(cafile=ca)
        context.verify_mode = ssl.CERT_REQUIRED
        if crl:
            context.load_verify_locations(cafile=crl)
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF  # as Mosquitto's crlfile
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


class TlsSession:
    """The server side of one TLS connection, over memory buffers.

    `receive` takes bytes from the network and returns the application data they carried;
    whatever OpenSSL has to send (handshake records, session tickets, alerts) waits in
    `outgoing()`. Errors are `ssl.SSLError`, raised from `receive`.
    """

    __slots__ = ("_incoming", "_outgoing", "_ssl", "established", "closed")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.established = False
        # The peer sent close_notify: nothing more will come.
        self.closed = False

    def receive(self, data: bytes) -> bytes:
        incoming, tls = self._incoming, self._ssl
        incoming.write(data)
        if not self.established:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            self.established = True
        chunks = []
        while incoming.pending or tls.pending():
            try:
                chunk = tls.read(_RECORD)
            except ssl.SSLWantReadError:
                break  # a partial record: the rest comes with the next bytes
            except ssl.SSLZeroReturnError:
                self.closed = True
                break
            if not chunk:  # how Python reports the peer's close_notify
                self.closed = True
                break
            chunks.append(chunk)
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def outgoing(self) -> bytes:
        outgoing = self._outgoing
        return outgoing.read() if outgoing.pending else b""

    def wrap(self, data: bytes | bytearray) -> bytes:
        """The records carrying `data`, after anything else waiting to be sent."""
        self._ssl.write(data)
        return self._outgoing.read()

    def shutdown(self) -> bytes:
        """Our close_notify (also the answer to the peer's); the peer's is not waited for."""
        if self.established:
            # SSLWantReadError: the peer's close_notify has not come, and need not.
            with contextlib.suppress(ssl.SSLError):
                self._ssl.unwrap()
        return self.outgoing()

    def peer_chain(self) -> tuple[bytes, ...]:
        return peer_chain(self._ssl)
