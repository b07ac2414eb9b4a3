"""One mosquitto.conf, two brokers: Debian's Mosquitto and `python -m broker --config`
must treat the same clients the same way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.broker.interop.mosquitto_process import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[3]

ACL = """\
user alice
topic readwrite home/#

user bob
topic read home/+/temperature
"""


@pytest.fixture(params=["mosquitto", "roost"])
def configured_broker(request, tmp_path):
    """A broker started on a mosquitto.conf: TCP and WebSocket listeners, a password file
    made by mosquitto_passwd, an ACL file."""
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "alice", "s3cret"], check=True,
                   capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "bob", "hunter2"], check=True, capture_output=True)
    (tmp_path / "acl").write_text(ACL)
    tcp, ws = free_port(), free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"""\
user root
per_listener_settings false
allow_anonymous false
password_file {passwords}
acl_file {tmp_path / 'acl'}
listener {tcp} 127.0.0.1
listener {ws} 127.0.0.1
protocol websockets
persistence false
log_dest stderr
log_type error
""")
    if request.param == "mosquitto":
        command = ["mosquitto", "-c", str(conf)]
    else:
        command = [sys.executable, "-m", "broker", "--config", str(conf)]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(tcp, proc)
        wait_for_port(ws, proc)
        yield request.param, tcp, ws
    finally:
        proc.kill()
        proc.wait()


def _login(client_factory, port, user, password, client_id, transport="tcp"):
    client = client_factory(port, client_id=client_id, transport=transport)
    client.client.username_pw_set(user, password)
    return client


def test_the_same_configuration_gives_the_same_rights(configured_broker, client_factory):
    name, tcp, ws = configured_broker
    alice = _login(client_factory, tcp, "alice", "s3cret", f"alice-{name}").connect()
    bob = _login(client_factory, ws, "bob", "hunter2", f"bob-{name}", transport="websockets").connect()
    bob.subscribe("home/#", qos=1)
    alice.publish("home/attic/temperature", b"19", qos=1)
    alice.publish("home/attic/humidity", b"60", qos=1)
    [message] = bob.expect(1)
    assert (message.topic, message.payload) == ("home/attic/temperature", b"19")
    bob.expect_none(0.5)  # read access is checked for every message


def test_the_same_configuration_refuses_the_same_clients(configured_broker, client_factory):
    name, tcp, _ = configured_broker
    wrong = _login(client_factory, tcp, "alice", "wrong", f"wrong-{name}").connect(wait=False)
    assert wrong.connected.wait(5) and wrong.connack[1].is_failure
    anonymous = client_factory(tcp, client_id=f"anon-{name}").connect(wait=False)
    assert anonymous.connected.wait(5) and anonymous.connack[1].is_failure


def test_a_plugin_other_than_dynamic_security_stops_the_start_with_its_line(tmp_path):
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener 1883\nplugin /usr/lib/x86_64-linux-gnu/mosquitto_auth_by_ip.so\n")
    result = subprocess.run([sys.executable, "-m", "broker", "--config", str(conf)], cwd=REPO,
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert f"{conf}:2: plugin /usr/lib/x86_64-linux-gnu/mosquitto_auth_by_ip.so: Roost cannot load C plugins" in result.stderr


def test_options_without_effect_are_named_in_a_warning(start_broker, tmp_path):
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("allow_anonymous true\nlog_dest syslog\npid_file /run/mosquitto.pid\n")
    broker = start_broker("--config", str(conf), anonymous=False)  # --bind from the fixture wins
    assert any(f"ignored (no effect here): {conf}:2: log_dest" in line for line in broker.lines)
    assert any(f"{conf}:3: pid_file" in line for line in broker.lines)
