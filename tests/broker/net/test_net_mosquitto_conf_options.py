"""mosquitto.conf options honoured by `python -m broker --config`: each run on a real broker
process with real clients, the way a Mosquitto user's configuration would be."""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.mqtt import Connect, Puback, Publish, Subscribe, Subscription, Will, encode
from broker.mqtt.reason_codes import ReasonCode
from tests.broker.conftest import BrokerProcess
from tests.broker.interop.mosquitto_process import free_port
from tests.broker.net.tls_certs import assert_refused_in_handshake, make_pki


def _wait_for(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def configured(tmp_path):
    """Start `python -m broker --config` on a mosquitto.conf text; ports listed are waited for."""
    started: list[BrokerProcess] = []

    def start(text: str, *ports: int) -> BrokerProcess:
        conf = tmp_path / f"mosquitto-{len(started)}.conf"
        conf.write_text(text)
        process = BrokerProcess(["--config", str(conf), "--sys-interval", "1"]).start()
        started.append(process)
        for port in ports:
            _wait_for(port)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


def _passwords(path: Path, *pairs: tuple[str, str]) -> Path:
    for i, (user, password) in enumerate(pairs):
        flags = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *flags, "-b", str(path), user, password], check=True,
                       capture_output=True)
    return path


def _refusal(raw_factory, port: int, level: int, **connect) -> int:
    client = raw_factory(port, level)
    connack = client.connect(**connect)
    assert connack is not None, "closed without CONNACK"
    return connack.reason_code


def test_a_listener_without_credentials_starts_and_refuses_every_client(configured, raw_factory):
    port = free_port()
    configured(f"listener {port} 127.0.0.1\n", port)
    assert _refusal(raw_factory, port, 5) == ReasonCode.NOT_AUTHORIZED
    assert _refusal(raw_factory, port, 4, client_id="old") == 5
    assert _refusal(raw_factory, port, 5, client_id="u", username="alice", password=b"x") == 0x87


def test_per_listener_settings_give_each_listener_its_own_security(configured, client_factory,
                                                                  raw_factory, tmp_path):
    open_port, locked_port = free_port(), free_port()
    (tmp_path / "open.acl").write_text("topic read sensors/#\ntopic write inbox/#\n")
    passwords = _passwords(tmp_path / "passwd", ("alice", "s3cret"))
    configured(f"""\
per_listener_settings true
listener {open_port} 127.0.0.1
allow_anonymous true
acl_file {tmp_path / 'open.acl'}
listener {locked_port} 127.0.0.1
password_file {passwords}
""", open_port, locked_port)
    # Anonymous: welcome on the first listener only.
    assert _refusal(raw_factory, locked_port, 5) == ReasonCode.NOT_AUTHORIZED
    anonymous = client_factory(open_port, "anon").connect()
    # The second listener has no ACL file: alice may use every topic there.
    alice = client_factory(locked_port, "alice")
    alice.client.username_pw_set("alice", "s3cret")
    alice.connect()
    alice.subscribe("inbox/#", qos=1)
    anonymous.subscribe("sensors/#", qos=1)
    alice.publish("sensors/1", b"21", qos=1)
    assert anonymous.expect(1)[0].payload == b"21"
    anonymous.publish("inbox/alice", b"hello", qos=1)
    assert alice.expect(1)[0].payload == b"hello"
    # The first listener's ACL file holds for its clients: no write to sensors/.
    anonymous.publish("sensors/2", b"spoof", qos=1)
    anonymous.expect_none(0.5)
    # A user the second listener's password file does not know is refused there.
    bob = client_factory(locked_port, "bob")
    bob.client.username_pw_set("bob", "guess")
    bob.connect(wait=False)
    assert bob.connected.wait(5) and bob.connack[1].value == ReasonCode.BAD_USER_NAME_OR_PASSWORD


def _tls_listener(pki, port: int, extra: str = "") -> str:
    return (f"listener {port} 127.0.0.1\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
            f"cafile {pki.ca}\nrequire_certificate true\n{extra}")


def _tls(pki, cert: Path | None, key: Path | None) -> dict:
    return {"ca_certs": str(pki.ca), "certfile": str(cert) if cert else None,
            "keyfile": str(key) if key else None}


def test_a_revoked_client_certificate_is_refused_by_crlfile(configured, client_factory, pki):
    port = free_port()
    configured(_tls_listener(pki, port, f"crlfile {pki.crl}\nuse_identity_as_username true\n"), port)
    client_factory(port, "good").connect(tls=_tls(pki, pki.client_cert, pki.client_key))
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.revoked_cert), str(pki.revoked_key))
    assert_refused_in_handshake(port, context, b"\x10\x00")


@pytest.mark.parametrize(("option", "username"), [
    ("use_identity_as_username", "device-1"),
    ("use_subject_as_username", "CN=device-1"),
])
def test_the_client_certificate_names_the_user_for_the_acl_file(configured, client_factory, pki,
                                                                tmp_path, option, username):
    port = free_port()
    (tmp_path / "acl").write_text(f"user {username}\ntopic readwrite own/#\n"
                                  "pattern readwrite users/%u/#\n")
    configured(_tls_listener(pki, port, f"{option} true\n")
               + f"acl_file {tmp_path / 'acl'}\n", port)
    tls = _tls(pki, pki.client_cert, pki.client_key)
    device = client_factory(port, "dev")
    # A password file is not consulted, and a username sent is replaced by the certificate's.
    device.client.username_pw_set("someone-else", "whatever")
    device.connect(tls=tls)
    assert device.subscribe("own/#", qos=1)[0].value == 1
    assert device.subscribe(f"users/{username}/#", qos=1)[0].value == 1
    assert device.subscribe("users/someone-else/#", qos=1)[0].value == 1  # granted, as by Mosquitto
    device.publish("own/x", b"1", qos=1)
    device.publish(f"users/{username}/y", b"2", qos=1)
    assert sorted(m.payload for m in device.expect(2)) == [b"1", b"2"]
    refused = device.client.publish("users/someone-else/z", b"3", qos=1)  # no write grant
    refused.wait_for_publish(5)
    device.expect_none(0.3)


def test_mount_point_puts_a_listeners_clients_under_their_own_prefix(configured, client_factory):
    mounted, plain = free_port(), free_port()
    configured(f"allow_anonymous true\nlistener {mounted} 127.0.0.1\nmount_point site-a/\n"
               f"listener {plain} 127.0.0.1\n", mounted, plain)
    inside = client_factory(mounted, "inside").connect()
    outside = client_factory(plain, "outside").connect()
    inside.subscribe("cmd/#", qos=1)
    outside.subscribe("#", qos=1)
    inside.publish("temp", b"20", qos=1)
    message = outside.expect(1)[0]
    assert (message.topic, message.payload) == ("site-a/temp", b"20")
    outside.publish("site-a/cmd/reboot", b"now", qos=1)
    outside.publish("cmd/reboot", b"not for site a", qos=1)
    [received] = inside.expect(1)
    assert (received.topic, received.payload) == ("cmd/reboot", b"now")
    inside.expect_none(0.5)


def test_message_size_limit_drops_larger_payloads_and_refuses_larger_wills(configured, raw_factory,
                                                                          client_factory):
    port = free_port()
    configured(f"listener {port} 127.0.0.1\nallow_anonymous true\nmessage_size_limit 10\n", port)
    watcher = client_factory(port, "watcher").connect()
    watcher.subscribe("big/#", qos=1)
    publisher = raw_factory(port, 5)
    assert publisher.connect("pub").reason_code == 0
    publisher.send(Publish("big/1", b"x" * 11, qos=1, packet_id=1))
    refused = publisher.receive()
    assert (refused.packet_id, refused.reason_code) == (1, ReasonCode.PACKET_TOO_LARGE)  # as Mosquitto
    publisher.send(Publish("big/2", b"x" * 10, qos=2, packet_id=2))
    assert publisher.receive().reason_code == 0
    publisher.send(Publish("big/3", b"x" * 11, qos=0))
    [message] = watcher.expect(1)
    assert message.topic == "big/2"
    watcher.expect_none(0.5)
    # 3.1.1 has no reason codes: a plain PUBACK, and the message is still dropped.
    old = raw_factory(port, 4)
    assert old.connect("old").reason_code == 0
    old.send(Publish("big/4", b"y" * 50, qos=1, packet_id=7))
    assert old.receive().packet_id == 7
    watcher.expect_none(0.5)
    will = Will("last/words", b"z" * 11)
    assert _refusal(raw_factory, port, 5, client_id="w5", will=will) == ReasonCode.PACKET_TOO_LARGE
    assert _refusal(raw_factory, port, 4, client_id="w4", will=will) == 5


def test_retain_available_false_refuses_retained_messages(configured, raw_factory):
    port = free_port()
    configured(f"listener {port} 127.0.0.1\nallow_anonymous true\nretain_available false\n", port)
    client = raw_factory(port, 5)
    assert client.connect("r").reason_code == 0
    client.send(Publish("kept", b"1", qos=1, retain=True, packet_id=1))
    assert client.receive().reason_code == ReasonCode.RETAIN_NOT_SUPPORTED  # DISCONNECT
    will = Will("kept/will", b"bye", retain=True)
    assert _refusal(raw_factory, port, 5, client_id="w", will=will) == ReasonCode.RETAIN_NOT_SUPPORTED


def test_allow_zero_length_clientid_false_refuses_clients_without_an_id(configured, raw_factory):
    port = free_port()
    configured(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
               "allow_zero_length_clientid false\n", port)
    assert _refusal(raw_factory, port, 4, client_id="") == 2  # identifier rejected
    assert _refusal(raw_factory, port, 5, client_id="") == ReasonCode.UNSPECIFIED_ERROR
    assert _refusal(raw_factory, port, 5, client_id="named") == 0


@pytest.mark.parametrize(("upgrade", "expected"), [("true", 2), ("false", 0)])
def test_upgrade_outgoing_qos_delivers_at_the_subscriptions_qos(configured, client_factory,
                                                               upgrade, expected):
    port = free_port()
    configured(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
               f"upgrade_outgoing_qos {upgrade}\n", port)
    publisher = client_factory(port, "pub").connect()
    publisher.publish("up/retained", b"r", qos=0, retain=True)
    subscriber = client_factory(port, "sub").connect()
    subscriber.subscribe("up/#", qos=2)
    [retained] = subscriber.expect(1)
    publisher.publish("up/live", b"l", qos=0)
    [live] = subscriber.expect(1)
    assert (retained.qos, live.qos) == (expected, expected)


def test_listener_limits_reach_mqtt5_clients(configured, client_factory):
    port = free_port()
    configured(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_qos 1\n"
               "max_topic_alias 3\nmax_keepalive 30\nmax_packet_size 2000\n", port)
    client = client_factory(port, "limits").connect(keepalive=600)
    connack = client.connack[2]
    assert (connack.MaximumQoS, connack.TopicAliasMaximum, connack.ServerKeepAlive,
            connack.MaximumPacketSize) == (1, 3, 30, 2000)
    assert client.subscribe("q/#", qos=2)[0].value == 1


def test_persistence_file_names_the_state_kept_in_the_persistence_location(configured, client_factory,
                                                                         tmp_path):
    port = free_port()
    store = tmp_path / "store"
    store.mkdir()

    def conf(name: str) -> str:
        return (f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                f"persistence_location {store}/\npersistence_file {name}.db\n")

    broker = configured(conf("first"), port)
    client_factory(port, "pub").connect().publish("kept/1", b"v", qos=1, retain=True)
    assert broker.stop() == 0
    assert {"first.db", "first.1.log"} <= {path.name for path in store.iterdir()}
    # Another persistence_file in the same directory is another broker's state.
    other = configured(conf("second"), port)
    subscriber = client_factory(port, "sub").connect()
    subscriber.subscribe("kept/#", qos=1)
    subscriber.expect_none()
    subscriber.disconnect()
    assert other.stop() == 0
    configured(conf("first"), port)
    subscriber = client_factory(port, "sub").connect()
    subscriber.subscribe("kept/#", qos=1)
    assert subscriber.expect(1)[0].payload == b"v"


def test_max_inflight_bytes_holds_back_deliveries_until_acknowledged(configured, raw_factory,
                                                                    client_factory):
    port = free_port()
    configured(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_bytes 10\n", port)
    subscriber = raw_factory(port, 4)
    assert subscriber.connect("slow").reason_code == 0
    subscriber.send(Subscribe(1, [Subscription("b/#", qos=1)]))
    assert subscriber.receive().packet_id == 1  # SUBACK
    publisher = client_factory(port, "pub").connect()
    for n in range(3):
        publisher.publish(f"b/{n}", b"123456", qos=1)
    first, second = subscriber.receive(), subscriber.receive()
    assert (first.topic, second.topic) == ("b/0", "b/1")  # 6 bytes, then 12: the limit is met
    assert subscriber.receive(timeout=0.5) is None
    subscriber.send(Puback(first.packet_id))
    assert subscriber.receive().topic == "b/2"


def test_use_identity_as_username_refuses_a_client_without_a_certificate(configured, pki):
    port = free_port()
    # Without require_certificate no certificate is asked for, so none can name the user.
    configured(f"listener {port} 127.0.0.1\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
               "use_identity_as_username true\n", port)
    context = ssl.create_default_context(cafile=str(pki.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(encode(Connect(protocol_level=4, client_id="anon"), 4))
        assert tls.recv(4) == b"\x20\x02\x00\x04"  # bad username or password


def test_a_cafile_without_require_certificate_completes_the_server_chain(configured, tmp_path):
    """Mosquitto sends the intermediates its cafile holds; clients that trust only the root
    verify the server, and none is asked for a certificate."""
    root_key, root = _certificate("Root", None, None, ca=True)
    middle_key, middle = _certificate("Intermediate", root, root_key, ca=True)
    server_key, server = _certificate("localhost", middle, middle_key, ca=False)
    for name, cert in (("root", root), ("middle", middle), ("server", server)):
        (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "all-ca.pem").write_bytes((tmp_path / "root.pem").read_bytes()
                                          + (tmp_path / "middle.pem").read_bytes())
    (tmp_path / "server.key").write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    port = free_port()
    configured(f"listener {port} 127.0.0.1\nallow_anonymous true\ncafile {tmp_path / 'all-ca.pem'}\n"
               f"certfile {tmp_path / 'server.pem'}\nkeyfile {tmp_path / 'server.key'}\n", port)
    context = ssl.create_default_context(cafile=str(tmp_path / "root.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(encode(Connect(protocol_level=4, client_id="chain"), 4))
        assert tls.recv(4) == b"\x20\x02\x00\x00"


def _certificate(cn: str, issuer, issuer_key, ca: bool):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder().subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                                        critical=False)
    return key, builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


def test_the_acl_file_sees_a_mounted_clients_topics_with_the_mount_point(configured, client_factory,
                                                                        tmp_path):
    """As in Mosquitto: ACL rules for a mounted listener name the topics as the whole broker
    sees them."""
    port = free_port()
    (tmp_path / "acl").write_text("topic readwrite site-a/open/#\ntopic readwrite closed/#\n")
    configured(f"allow_anonymous true\nacl_file {tmp_path / 'acl'}\n"
               f"listener {port} 127.0.0.1\nmount_point site-a/\n", port)
    client = client_factory(port, "mounted").connect()
    assert client.subscribe("open/#", qos=1)[0].value == 1
    assert client.subscribe("$share/g/open/x", qos=1)[0].value == 1
    assert client.subscribe("closed/#", qos=1)[0].value == 1  # granted; site-a/closed is not readable
    client.publish("open/a", b"ok", qos=1)
    client.publish("closed/a", b"no", qos=1)
    assert [(m.topic, m.payload) for m in client.collect(1.0)] == [("open/a", b"ok")]
