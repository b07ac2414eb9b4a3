"""TLS listeners: client certificates required, handshakes bounded, and no loss under load."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from broker.mqtt import Connect, encode
from broker.mqtt.packets import Will
from tests.broker.net.tls_certs import assert_refused_in_handshake, make_pki


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


def tls_args(pki):
    return ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
            "--tls-ca", str(pki.ca)]


def client_context(pki, cert=True, other=False):
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert:
        if other:
            ctx.load_cert_chain(str(pki.other_client_cert), str(pki.other_client_key))
        else:
            ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


def test_a_client_with_a_certificate_from_the_ca_connects_without_anonymous(start_broker, client_factory, pki):
    broker = start_broker(*tls_args(pki), bind=["tls://127.0.0.1:0"], anonymous=False)
    c = client_factory(broker.tls_port)
    c.connect(tls={"ca_certs": str(pki.ca), "certfile": str(pki.client_cert),
                   "keyfile": str(pki.client_key)})
    c.subscribe("secure/#", 1)
    c.publish("secure/x", b"over tls", 1)
    assert c.expect(1)[0].payload == b"over tls"


@pytest.mark.parametrize("other", [False, True], ids=["no certificate", "untrusted certificate"])
def test_a_client_without_a_trusted_certificate_is_refused_in_the_handshake(start_broker, pki, other):
    broker = start_broker(*tls_args(pki), bind=["tls://127.0.0.1:0"], anonymous=False)
    assert_refused_in_handshake(broker.tls_port, client_context(pki, cert=other, other=other),
                                b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
    # The refusal is logged with its reason, though no MQTT connection ever existed.
    reason = "unknown CA" if other else "no client certificate"
    deadline = time.monotonic() + 5
    while f"TLS handshake from 127.0.0.1 refused: {reason}" not in "\n".join(broker.lines):
        assert time.monotonic() < deadline, "\n".join(broker.lines)
        time.sleep(0.05)


def test_tls_below_1_2_is_refused(start_broker, pki):
    broker = start_broker(*tls_args(pki), bind=["tls://127.0.0.1:0"], anonymous=False)
    ctx = client_context(pki)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        ctx.wrap_socket(raw, server_hostname="localhost")


def test_a_tls_handshake_that_never_finishes_is_dropped_after_the_connect_timeout(start_broker, pki):
    broker = start_broker(*tls_args(pki), "--connect-timeout", "1",
                          bind=["tls://127.0.0.1:0", "127.0.0.1:0"])
    with socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x10")  # a TLS record header, then silence
        started = time.monotonic()
        try:
            while raw.recv(1024):
                pass
        except ConnectionResetError:
            pass
        assert 0.5 < time.monotonic() - started < 4
    assert broker.alive


def test_a_qos2_publisher_and_a_qos1_tls_subscriber_lose_nothing_under_load(start_broker, pki, client_factory):
    """A 3.1.1 publisher keeps 100 QoS 2 messages in flight; a TLS QoS 1 subscriber must
    get every one, and none twice from the QoS 2 flow."""
    total = 6000
    # Publishers are never slowed for a subscriber (issue 14): the queue must hold the burst.
    broker = start_broker(*tls_args(pki), "--max-queued-messages", str(total),
                          bind=["tls://127.0.0.1:0", "127.0.0.1:0"])
    sub = client_factory(broker.tls_port, client_id="loss-sub", version=4)
    sub.connect(tls={"ca_certs": str(pki.ca), "certfile": str(pki.client_cert),
                     "keyfile": str(pki.client_key)})
    sub.subscribe("load/#", 1)
    pub = client_factory(broker.port, client_id="loss-pub", version=4)
    pub.client.max_inflight_messages_set(100)
    pub.client.max_queued_messages_set(0)
    pub.connect()
    infos = [pub.client.publish("load/x", str(i).encode(), 2) for i in range(total)]
    for info in infos:
        info.wait_for_publish(30)
    got = [int(m.payload) for m in sub.expect(total, timeout=60)]
    assert sorted(got) == list(range(total))
    assert len(set(got)) == total
    sub.expect_none(0.5)


def test_a_client_closing_tls_with_close_notify_but_no_disconnect_has_its_will_published(
        start_broker, pki, client_factory):
    """close_notify ends the TLS session, not the MQTT session gracefully [MQTT-3.1.2-8]."""
    broker = start_broker(*tls_args(pki), bind=["tls://127.0.0.1:0"], anonymous=False)
    watcher = client_factory(broker.tls_port, client_id="watcher")
    watcher.connect(tls={"ca_certs": str(pki.ca), "certfile": str(pki.client_cert),
                         "keyfile": str(pki.client_key)})
    watcher.subscribe("wills/#", 1)
    with socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5) as raw:
        tls = client_context(pki).wrap_socket(raw, server_hostname="localhost")
        will = Connect(protocol_level=4, client_id="leaver", will=Will("wills/leaver", b"gone", qos=1))
        tls.sendall(encode(will, 4))
        assert tls.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
        tls.unwrap()  # close_notify, answered by the broker's own
    assert watcher.expect(1)[0].payload == b"gone"


def test_the_broker_ends_a_tls_connection_it_closes_with_close_notify(start_broker, pki):
    """A client taken over sees a clean TLS close, not a truncated stream."""
    broker = start_broker(*tls_args(pki), bind=["tls://127.0.0.1:0"], anonymous=False)
    sockets = []
    try:
        for _ in range(2):
            raw = socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5)
            tls = client_context(pki).wrap_socket(raw, server_hostname="localhost")
            sockets.append(tls)
            tls.sendall(encode(Connect(protocol_level=4, client_id="twice"), 4))
            assert tls.recv(4) == b"\x20\x02\x00\x00"
        # The first connection is closed by the takeover: recv returns b"" only after a
        # close_notify (a bare TCP close raises SSLEOFError on a default context).
        assert sockets[0].recv(1024) == b""
    finally:
        for s in sockets:
            s.close()
