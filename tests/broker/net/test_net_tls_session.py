"""TlsSession, the broker's TLS over memory buffers, against Python's own TLS client."""

from __future__ import annotations

import contextlib
import ssl

import pytest

from broker.net.tls import TlsSession, handshake_failure_reason, server_context
from tests.broker.net.tls_certs import make_pki


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


class Peer:
    """A client TLS object over memory buffers, wired to a server session by hand."""

    def __init__(self, pki, cert=True, other=False):
        context = ssl.create_default_context(cafile=str(pki.ca))
        if cert:
            chain, key = (pki.other_client_cert, pki.other_client_key) if other else (pki.client_cert, pki.client_key)
            context.load_cert_chain(str(chain), str(key))
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.session = TlsSession(server_context(str(pki.server_cert), str(pki.server_key), str(pki.ca)))

    def handshake(self) -> bytes:
        """Run the handshake; returns the application data the server received on the way."""
        received = b""
        for _ in range(6):
            with contextlib.suppress(ssl.SSLWantReadError):
                self.tls.do_handshake()
            if self.outgoing.pending:
                received += self.session.receive(self.outgoing.read())
            reply = self.session.outgoing()
            if reply:
                self.incoming.write(reply)
        return received

    def read(self) -> bytes:
        self.incoming.write(self.session.outgoing())
        return self.tls.read(65536)


def test_a_handshake_and_data_both_ways(pki):
    peer = Peer(pki)
    peer.handshake()
    assert peer.session.established
    assert len(peer.session.peer_chain()) == 1  # the client's leaf, DER
    peer.tls.write(b"\x10" * 40_000)  # three records in one read
    assert peer.session.receive(peer.outgoing.read()) == b"\x10" * 40_000
    peer.incoming.write(peer.session.wrap(b"\x20\x02\x00\x00"))
    assert peer.tls.read(4) == b"\x20\x02\x00\x00"


def test_a_record_split_across_reads_is_returned_once_complete(pki):
    peer = Peer(pki)
    peer.handshake()
    peer.tls.write(b"CONNECT")
    record = peer.outgoing.read()
    assert peer.session.receive(record[:5]) == b""
    assert peer.session.receive(record[5:]) == b"CONNECT"


def test_close_notify_from_the_peer_is_seen_and_answered(pki):
    peer = Peer(pki)
    peer.handshake()
    with pytest.raises(ssl.SSLWantReadError):
        peer.tls.unwrap()
    assert peer.session.receive(peer.outgoing.read()) == b""
    assert peer.session.closed
    peer.incoming.write(peer.session.shutdown())
    peer.tls.unwrap()  # completes: the server's close_notify arrived


@pytest.mark.parametrize(("cert", "other", "reason"), [
    (False, False, "no client certificate"),
    (True, True, "unknown CA"),
])
def test_a_refused_client_certificate_raises_with_its_reason(pki, cert, other, reason):
    peer = Peer(pki, cert=cert, other=other)
    with pytest.raises(ssl.SSLError) as refused:
        peer.handshake()
    assert handshake_failure_reason(refused.value) == reason
    assert not peer.session.established
    assert peer.session.outgoing()  # the alert that tells the client why


def test_plain_mqtt_sent_to_a_tls_port_is_not_tls(pki):
    session = Peer(pki).session
    with pytest.raises(ssl.SSLError) as refused:
        session.receive(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
    assert handshake_failure_reason(refused.value) == "not TLS"
