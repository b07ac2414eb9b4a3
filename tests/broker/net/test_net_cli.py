"""The standalone CLI: options, secure defaults, clean shutdown and persistence."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.broker.conftest import REPO


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=20)


def test_help_documents_every_option():
    out = run_cli("--help").stdout
    for option in ("--bind", "--anonymous", "--tls-cert", "--tls-key", "--tls-ca", "--persist",
                   "--persist-file",
                   "--max-packet-size", "--max-queued-messages", "--max-queued-bytes",
                   "--max-inflight", "--max-keepalive", "--connect-timeout",
                   "--max-connections", "--sys-interval"):
        assert option in out


def test_it_refuses_to_start_without_anonymous_or_client_certificates():
    result = run_cli("--bind", "127.0.0.1:0")
    assert result.returncode == 2
    assert "--anonymous" in result.stderr


def test_it_refuses_a_plain_listener_when_clients_must_present_certificates(tmp_path):
    result = run_cli("--bind", "127.0.0.1:0", "--tls-ca", str(tmp_path / "ca.pem"))
    assert result.returncode == 2
    assert "tls://" in result.stderr


def test_it_logs_one_listening_line_per_listener(start_broker):
    broker = start_broker(bind=["127.0.0.1:0", "127.0.0.1:0"])
    assert sum("listening on mqtt://127.0.0.1:" in line for line in broker.lines) == 2


def test_sigterm_disconnects_clients_and_exits_0(start_broker, client_factory):
    broker = start_broker()
    c = client_factory(broker.port).connect()
    assert broker.stop() == 0
    assert c.disconnected.wait(5)
    assert c.disconnect_reason.value == 0x8B  # server shutting down


def test_the_connection_limit_refuses_extra_clients(start_broker, raw_factory):
    broker = start_broker("--max-connections", "1")
    first = raw_factory(broker.port)
    assert first.connect("one").reason_code == 0
    second = raw_factory(broker.port)
    assert second.closed(2)


@pytest.mark.parametrize("version", [4, 5])
def test_retained_messages_and_sessions_survive_a_restart_with_persist(start_broker, client_factory, tmp_path, version):
    from paho.mqtt.packettypes import PacketTypes

    from tests.broker.conftest import props

    broker = start_broker("--persist", str(tmp_path / "state"))
    session = props(PacketTypes.CONNECT, SessionExpiryInterval=3600) if version == 5 else None
    sub = client_factory(broker.port, client_id="keeper", version=version)
    sub.connect(clean=False, properties=session) if version == 5 else sub.connect(clean=False)
    sub.subscribe("p/#", 1)
    sub.disconnect()
    pub = client_factory(broker.port, version=version).connect()
    pub.publish("p/retained", b"kept", 1, retain=True)
    pub.publish("p/queued", b"waiting", 1)
    pub.disconnect()
    broker.restart()
    assert (tmp_path / "state" / "roost-broker.json").exists()
    again = client_factory(broker.port, client_id="keeper", version=version)
    again.connect(clean=False, properties=session) if version == 5 else again.connect(clean=False)
    assert again.session_present
    got = {(m.topic, m.payload) for m in again.expect(2)}
    assert got == {("p/retained", b"kept"), ("p/queued", b"waiting")}
    fresh = client_factory(broker.port, version=version).connect()
    fresh.subscribe("p/retained", 1)
    assert fresh.expect(1)[0].payload == b"kept"


@pytest.mark.parametrize("durability", ["ack", "none"])
def test_a_snapshot_it_cannot_read_stops_the_start_instead_of_being_overwritten(tmp_path, durability):
    mosquitto_db = b"\x00\xb5\x00mosquitto db\x00\x00\x00\x06"
    (tmp_path / "mosquitto.db").write_bytes(mosquitto_db)
    (tmp_path / "roost-broker.json").write_text("{not json")
    for name, reason in (("mosquitto.db", "is a Mosquitto database"),
                         ("roost-broker.json", "is not a Roost broker snapshot")):
        result = run_cli("--bind", "127.0.0.1:0", "--anonymous", "--persist", str(tmp_path),
                         "--persist-file", name, "--durability", durability)
        assert result.returncode == 1
        assert reason in result.stderr
    assert (tmp_path / "mosquitto.db").read_bytes() == mosquitto_db
    assert (tmp_path / "roost-broker.json").read_text() == "{not json"
