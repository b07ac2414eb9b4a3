"""Devices on `manage.py runbroker`: mTLS with platform certificates, the right refusals,
tenant namespaces, the metrics endpoint and the command-line bundle with mosquitto clients."""

from __future__ import annotations

import datetime
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker.mqtt import Connect, encode
from tests.broker.conftest import Client
from tests.broker.integration.platform_harness import (
    REVOKED_IN_HANDSHAKE,
    Bundle,
    Platform,
    PlatformBroker,
    connack_code,
    device_client,
    eventually,
    refusal,
)

ACME = "it-acme"
GLOBEX = "it-globex"


@pytest.fixture(scope="module", autouse=True)
def registry(platform: Platform) -> dict[str, Bundle]:
    """Two tenants and their devices, in place before the module's broker starts."""
    platform.call("tenant_create", slug=ACME)
    platform.call("tenant_create", slug=GLOBEX)
    return {
        "sensor-1": platform.device(ACME, "sensor-1"),
        "sensor-2": platform.device(ACME, "sensor-2"),
        "twin-acme": platform.device(ACME, "twin"),
        "twin-globex": platform.device(GLOBEX, "twin"),
    }


def _puback_codes(client: Any) -> dict[int, int]:
    """Record the reason code of every PUBACK the client gets, by message id."""
    codes: dict[int, int] = {}
    client.client.on_publish = lambda _c, _u, mid, reason, _p: codes.__setitem__(mid, reason.value)
    return codes


# Connecting and using its own topics ---------------------------------------------------------


@pytest.mark.parametrize("version", [4, 5], ids=["mqtt311", "mqtt5"])
def test_a_device_with_its_platform_certificate_publishes_and_subscribes_under_its_own_topics(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any, version: int) -> None:
    sensor = clients(device_client(broker, registry["sensor-1"], version=version)).connect()
    granted = sensor.subscribe("devices/sensor-1/#", qos=1)
    assert [getattr(g, "value", g) for g in granted] == [1]
    sensor.publish("devices/sensor-1/temp", b"21.5", qos=1)
    [message] = sensor.expect(1)
    assert (message.topic, message.payload) == ("devices/sensor-1/temp", b"21.5")


def test_a_device_may_not_subscribe_to_another_devices_topics(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    sensor = clients(device_client(broker, registry["sensor-1"])).connect()
    granted = sensor.subscribe("devices/sensor-2/#", qos=1)
    assert [g.value for g in granted] == [0x87]


def test_publishing_outside_its_own_topics_is_refused_with_puback_0x87(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    owner = clients(device_client(broker, registry["sensor-2"])).connect()
    owner.subscribe("devices/sensor-2/#", qos=1)
    intruder = clients(device_client(broker, registry["sensor-1"])).connect()
    codes = _puback_codes(intruder)
    denied = intruder.client.publish("devices/sensor-2/temp", b"spoofed", qos=1)
    allowed = intruder.client.publish("devices/sensor-1/temp", b"own", qos=1)
    denied.wait_for_publish(5)
    allowed.wait_for_publish(5)
    assert codes == {denied.mid: 0x87, allowed.mid: 0x10}  # accepted; 0x10: nobody subscribed
    owner.expect_none(0.5)


def test_a_311_device_publishing_outside_its_own_topics_reaches_no_one(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    owner = clients(device_client(broker, registry["sensor-2"])).connect()
    owner.subscribe("devices/sensor-2/#", qos=1)
    intruder = clients(device_client(broker, registry["sensor-1"], version=4)).connect()
    intruder.publish("devices/sensor-2/temp", b"spoofed", qos=1)
    owner.expect_none(0.5)
    owner.publish("devices/sensor-2/temp", b"genuine", qos=1)
    assert [m.payload for m in owner.expect(1)] == [b"genuine"]


# Refusals ------------------------------------------------------------------------------------


def _foreign_certificate(folder: Path, name: str) -> tuple[str, str]:
    """A CA of nobody's platform and a client certificate it signed for `name`."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Elsewhere CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = folder / "foreign.pem", folder / "foreign.key"
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def _handshake_failures(broker: PlatformBroker, reason: str) -> float:
    return broker.metric("roost_broker_tls_handshake_failures_total", reason=reason)


def test_a_certificate_from_another_ca_fails_the_tls_handshake(
        broker: PlatformBroker, registry: dict[str, Bundle], tmp_path: Path) -> None:
    bundle = registry["sensor-1"]
    assert connack_code(broker.port, bundle.ca, bundle.cert, bundle.key, "sensor-1") == 0
    cert, key = _foreign_certificate(tmp_path, "sensor-1")
    before = _handshake_failures(broker, "unknown CA")
    # TLS 1.3 reports the refusal after the client's Finished, as an alert or an abrupt close.
    with pytest.raises(ssl.SSLError):
        connack_code(broker.port, bundle.ca, cert, key, "sensor-1")
    assert eventually(lambda: _handshake_failures(broker, "unknown CA") == before + 1)


def test_a_connection_without_a_client_certificate_fails_the_tls_handshake(
        broker: PlatformBroker, registry: dict[str, Bundle]) -> None:
    bundle = registry["sensor-1"]
    assert connack_code(broker.port, bundle.ca, bundle.cert, bundle.key, "sensor-1") == 0
    before = _handshake_failures(broker, "no client certificate")
    with pytest.raises(ssl.SSLError):
        connack_code(broker.port, bundle.ca, None, None, "sensor-1")
    assert eventually(lambda: _handshake_failures(broker, "no client certificate") == before + 1)


def test_a_revoked_certificate_is_refused_in_the_tls_handshake(
        broker: PlatformBroker, platform: Platform) -> None:
    bundle = platform.device(ACME, "revoked-1")
    args = (broker.port, bundle.ca, bundle.cert, bundle.key, "revoked-1")
    assert eventually(lambda: connack_code(*args) == 0)
    platform.call("cert_revoke", serial=bundle.serial)
    # At CONNECT (0x8A banned, 3.1.1: 5) until the new CRL is in the TLS context, then in TLS.
    assert eventually(lambda: refusal(*args) == REVOKED_IN_HANDSHAKE)


def test_an_expired_certificate_fails_the_tls_handshake(
        broker: PlatformBroker, platform: Platform, registry: dict[str, Bundle]) -> None:
    good = registry["sensor-1"]
    platform.call("device_create", tenant=ACME, name="expired-1")
    folder = platform.bundles / ACME / "expired-1"
    platform.call("cert_issue_expired", tenant=ACME, name="expired-1", out=str(folder))
    before = _handshake_failures(broker, "certificate expired")
    # The server's alert (certificate expired) may reach the client only as the close.
    with pytest.raises(ssl.SSLError):
        connack_code(broker.port, good.ca, str(folder / "device.pem"), str(folder / "device.key"),
                     "expired-1")
    assert eventually(lambda: _handshake_failures(broker, "certificate expired") == before + 1)
    assert connack_code(broker.port, good.ca, good.cert, good.key, "sensor-1") == 0


def test_a_disabled_device_is_refused_as_not_authorized(
        broker: PlatformBroker, platform: Platform, clients: Any) -> None:
    bundle = platform.device(ACME, "disabled-1")
    args = (broker.port, bundle.ca, bundle.cert, bundle.key, "disabled-1")
    assert eventually(lambda: connack_code(*args) == 0)
    platform.call("device_enable", tenant=ACME, name="disabled-1", enabled=False)
    assert eventually(lambda: connack_code(*args) != 0) and connack_code(*args) == 5  # 3.1.1: not authorized
    client = clients(device_client(broker, bundle))
    client.connect(wait=False)
    assert client.connected.wait(5)
    assert client.connack[1].value == 0x87


def test_a_client_id_other_than_the_device_name_is_refused_as_an_invalid_identifier(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    bundle = registry["sensor-1"]
    assert connack_code(broker.port, bundle.ca, bundle.cert, bundle.key, "sensor-1") == 0
    assert connack_code(broker.port, bundle.ca, bundle.cert, bundle.key, "sensor-2") == 2  # 3.1.1: identifier rejected
    client = clients(device_client(broker, bundle, client_id="sensor-2"))
    client.connect(wait=False)
    assert client.connected.wait(5)
    assert client.connack[1].value == 0x85


def test_a_connect_asking_for_enhanced_authentication_is_refused_with_bad_authentication_method(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    """The certificate is the credential; an AUTH exchange (here SCRAM) is not offered."""
    properties = Properties(PacketTypes.CONNECT)
    properties.AuthenticationMethod = "SCRAM-SHA-256"
    properties.AuthenticationData = b"n,,n=sensor-1,r=abc"
    client = clients(device_client(broker, registry["sensor-1"]))
    client.connect(properties=properties, wait=False)
    assert client.connected.wait(5)
    assert client.connack[1].value == 0x8C


def test_a_plain_tcp_connection_to_the_device_port_gets_no_connack(
        broker: PlatformBroker, registry: dict[str, Bundle]) -> None:
    bundle = registry["sensor-1"]
    assert connack_code(broker.port, bundle.ca, bundle.cert, bundle.key, "sensor-1") == 0
    received = b""
    with socket.create_connection(("127.0.0.1", broker.port), timeout=3) as sock:
        sock.sendall(encode(Connect(protocol_level=4, client_id="sensor-1"), 4))
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    assert not received.startswith(b"\x20"), f"got an MQTT CONNACK over plain TCP: {received!r}"
    assert _handshake_failures(broker, "not TLS") >= 1


# Tenants -------------------------------------------------------------------------------------


def test_two_tenants_using_the_same_topic_names_see_none_of_each_others_messages(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    acme = clients(device_client(broker, registry["twin-acme"])).connect()
    globex = clients(device_client(broker, registry["twin-globex"])).connect()
    for twin in (acme, globex):
        twin.subscribe("devices/twin/#", qos=1)
    acme.publish("devices/twin/state", b"acme", qos=1, retain=True)
    globex.publish("devices/twin/state", b"globex", qos=1)
    assert [m.payload for m in acme.expect(1)] == [b"acme"]
    assert [m.payload for m in globex.expect(1)] == [b"globex"]
    acme.expect_none(0.3)
    globex.expect_none(0.3)
    # A new subscriber of globex does not get acme's retained message either.
    globex.unsubscribe("devices/twin/#")
    globex.subscribe("devices/twin/#", qos=1)
    globex.expect_none(0.5)


# Metrics -------------------------------------------------------------------------------------


def test_the_metrics_endpoint_shows_connections_authentication_failures_and_acl_denials(
        broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    reason = "client id differs from the device name"
    failures = broker.metric("roost_broker_authentication_failures_total", reason=reason)
    denials = broker.metric("roost_broker_acl_denials_total", action="publish")
    bundle = registry["sensor-2"]
    assert connack_code(broker.port, bundle.ca, bundle.cert, bundle.key, "not-sensor-2") == 2
    sensor = clients(device_client(broker, bundle)).connect()
    sensor.publish("devices/sensor-1/x", b"no", qos=1)
    sensor.publish("devices/sensor-2/x", b"yes", qos=1)
    metrics = broker.metrics()
    assert metrics[("roost_broker_connections", frozenset())] >= 1
    assert metrics[("roost_broker_authentication_failures_total", frozenset({("reason", reason)}))] == failures + 1
    assert metrics[("roost_broker_acl_denials_total", frozenset({("action", "publish")}))] == denials + 1
    connected = metrics[("roost_broker_connections", frozenset())]
    sensor.disconnect()
    eventually(lambda: broker.metric("roost_broker_connections") == connected - 1)


# The command-line bundle ---------------------------------------------------------------------


def _mosquitto(tool: str, broker: PlatformBroker, folder: Path, *args: str,
               cert: bool = True) -> subprocess.CompletedProcess[str]:
    tls = ["--cafile", str(folder / "ca.pem")]
    if cert:
        tls += ["--cert", str(folder / "device.pem"), "--key", str(folder / "device.key")]
    return subprocess.run([tool, "-h", "localhost", "-p", str(broker.port), *tls, *args],
                          capture_output=True, text=True, timeout=20)


@pytest.fixture(scope="module")
def cli_bundle(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")):
        pytest.skip("mosquitto_pub/mosquitto_sub are not installed")
    folder = tmp_path_factory.mktemp("cli-bundle")
    platform.call("device_create", tenant=ACME, name="mosq-1")
    done = platform.manage("cert", "issue", "mosq-1", "--tenant", ACME, "--out", str(folder))
    assert done.returncode == 0, done.stderr
    assert {p.name for p in folder.iterdir()} >= {"ca.pem", "device.pem", "device.key"}
    return folder


def test_mosquitto_clients_work_with_the_bundle_written_by_cert_issue(
        broker: PlatformBroker, cli_bundle: Path) -> None:
    # The new certificate reaches the running broker through the change feed.
    eventually(lambda: _mosquitto("mosquitto_pub", broker, cli_bundle, "-i", "mosq-1", "-t",
                                  "devices/mosq-1/state", "-m", "on", "-r", "-q", "1").returncode == 0,
               timeout=10, interval=0.2)
    got = _mosquitto("mosquitto_sub", broker, cli_bundle, "-i", "mosq-1", "-t", "devices/mosq-1/#",
                     "-C", "1", "-W", "10", "-v")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "devices/mosq-1/state on"


def test_mosquitto_pub_without_the_device_certificate_is_refused(
        broker: PlatformBroker, cli_bundle: Path) -> None:
    done = _mosquitto("mosquitto_pub", broker, cli_bundle, "-i", "mosq-1", "-t", "devices/mosq-1/state",
                      "-m", "off", cert=False)
    assert done.returncode != 0
    got = _mosquitto("mosquitto_sub", broker, cli_bundle, "-i", "mosq-1", "-t", "devices/mosq-1/#",
                     "-C", "1", "-W", "10")
    assert got.stdout.strip() == "on"



# MQTT over WebSocket for devices --------------------------------------------------------------


@pytest.fixture(scope="module")
def wss_broker(platform: Platform, registry: dict[str, Bundle]) -> Any:
    process = PlatformBroker(platform, wss=True)
    try:
        yield process.start()
    finally:
        process.kill()


def test_devices_reach_the_broker_over_websocket_with_the_same_mutual_tls(
        wss_broker: PlatformBroker, registry: dict[str, Bundle], clients: Any) -> None:
    """For devices that can only leave their network on an HTTPS port, as AWS IoT allows."""
    bundle = registry["sensor-1"]
    sensor = clients(Client(wss_broker.wss_port, "sensor-1", 5, transport="websockets"))
    sensor.client.tls_set(**bundle.tls())
    sensor.connect()
    assert [g.value for g in sensor.subscribe("devices/sensor-1/#", qos=1)] == [1]
    assert [g.value for g in sensor.subscribe("devices/sensor-2/#", qos=1)] == [0x87]  # same ACLs
    plain = clients(device_client(wss_broker, registry["sensor-2"])).connect()  # and the same topics
    plain.publish("devices/sensor-1/cmd", b"no", qos=1)
    sensor.publish("devices/sensor-1/state", b"over wss", qos=1)
    [message] = sensor.expect(1)
    assert (message.topic, message.payload) == ("devices/sensor-1/state", b"over wss")
    impostor = clients(Client(wss_broker.wss_port, "sensor-2", 5, transport="websockets"))
    impostor.client.tls_set(**bundle.tls())  # sensor-1's certificate, sensor-2's client id
    impostor.connect(wait=False)
    assert impostor.connected.wait(5) and impostor.connack[1].value == 0x85
