"""--password-file and --acl-file on a real broker process, with files made the way
Mosquitto users make them (mosquitto_passwd) and real clients (paho, mosquitto_pub/sub)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ACL = """\
topic read public/#

user alice
topic readwrite home/#
topic deny home/secret/#

user bob
topic read home/+/temperature
topic write logs/bob

pattern readwrite devices/%c/#
"""


@pytest.fixture
def access_files(tmp_path: Path) -> tuple[Path, Path]:
    passwords = tmp_path / "passwords"
    for user, password, create in (("alice", "s3cret", True), ("bob", "hunter2", False)):
        subprocess.run(["mosquitto_passwd", *(["-c"] if create else []), "-b", str(passwords), user, password],
                       check=True, capture_output=True)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    return passwords, acl


@pytest.fixture
def broker(start_broker, access_files):
    passwords, acl = access_files
    return start_broker("--password-file", str(passwords), "--acl-file", str(acl), anonymous=False)


def login(client_factory, broker, user, password, client_id="", version=5, wait=True):
    client = client_factory(broker.port, client_id=client_id or f"{user}-client", version=version)
    client.client.username_pw_set(user, password)
    return client.connect(wait=wait)


@pytest.mark.parametrize(("level", "credentials", "code"), [
    (5, {"username": "alice", "password": b"wrong"}, 0x86),
    (4, {"username": "alice", "password": b"wrong"}, 4),
    (5, {"username": "mallory", "password": b"s3cret"}, 0x86),
    (5, {}, 0x87),
    (4, {}, 5),
], ids=["wrong-password-mqtt5", "wrong-password-mqtt311", "unknown-user", "anonymous-mqtt5",
        "anonymous-mqtt311"])
def test_bad_or_missing_credentials_get_the_right_connack(broker, raw_factory, level, credentials, code):
    connack = raw_factory(broker.port, level).connect("someone", **credentials)
    assert connack.reason_code == code


def test_users_get_what_the_acl_file_grants_and_nothing_else(broker, client_factory):
    alice = login(client_factory, broker, "alice", "s3cret")
    bob = login(client_factory, broker, "bob", "hunter2")
    assert [c.value for c in bob.subscribe("#", qos=1)] == [1]  # granted, filtered per message
    # Outside alice's grants: granted as by Mosquitto, and nothing comes (checked below).
    assert [c.value for c in alice.subscribe("garden/#", qos=1)] == [1]
    alice.publish("home/attic/temperature", b"19", qos=1)
    alice.publish("home/attic/humidity", b"60", qos=1)
    [message] = bob.expect(1)
    assert (message.topic, message.payload) == ("home/attic/temperature", b"19")
    bob.expect_none(0.3)
    refused = {}
    bob.client.on_publish = lambda _c, _u, mid, reason, _p: refused.__setitem__(mid, reason.value)
    info = bob.client.publish("home/attic/temperature", b"-40", qos=1)
    info.wait_for_publish(5)
    assert refused[info.mid] == 0x87  # PUBACK reason code Not authorized (section 3.4.2.1)
    assert [c.value for c in alice.subscribe("home/secret/#", qos=1)] == [1]
    assert [c.value for c in alice.subscribe("devices/#", qos=1)] == [1]
    sensor = login(client_factory, broker, "bob", "hunter2", client_id="sensor-7")
    sensor.subscribe("devices/sensor-7/#", qos=1)
    sensor.publish("devices/sensor-7/state", b"on", qos=1)
    assert sensor.expect(1)[0].payload == b"on"  # routed, to its own subscriber
    alice.expect_none(0.3)  # granted, yet alice may read nothing of devices/sensor-7


def test_patterns_give_each_client_its_own_topics(broker, client_factory):
    sensor = login(client_factory, broker, "bob", "hunter2", client_id="sensor-7")
    assert [c.value for c in sensor.subscribe("devices/sensor-7/#", qos=1)] == [1]
    assert [c.value for c in sensor.subscribe("devices/sensor-8/#", qos=1)] == [1]
    sensor.publish("devices/sensor-7/state", b"on", qos=1)
    assert sensor.expect(1)[0].payload == b"on"
    sensor.publish("devices/sensor-8/state", b"on", qos=1)  # not its own: refused, and unseen
    sensor.expect_none(0.3)


def test_mosquitto_clients_log_in_with_the_password_file(broker):
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", "alice",
                            "-P", "s3cret", "-t", "home/#", "-C", "1", "-W", "5"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", "alice", "-P", "s3cret",
                    "-t", "home/door", "-m", "open", "-q", "1"], check=True, timeout=10)
    out, err = sub.communicate(timeout=10)
    assert out.strip() == b"open", err
    denied = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", "alice",
                             "-P", "wrong", "-t", "home/door", "-m", "x"], capture_output=True, timeout=10)
    assert denied.returncode != 0
    assert b"not authorised" in denied.stderr.lower() or b"bad user name or password" in denied.stderr.lower()


def test_sighup_reloads_the_files_and_stops_deliveries_no_longer_allowed(broker, client_factory, access_files):
    passwords, acl = access_files
    alice = login(client_factory, broker, "alice", "s3cret")
    bob = login(client_factory, broker, "bob", "hunter2")
    bob.subscribe("home/+/temperature", qos=1)
    acl.write_text(ACL.replace("topic read home/+/temperature\n", ""))
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "alice", "rotated"], check=True, capture_output=True)
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while not any("reloaded the access files" in line for line in broker.lines):
        assert time.monotonic() < deadline, "\n".join(broker.lines)
        time.sleep(0.05)
    # As in Mosquitto, the subscription stays and what bob may no longer read is not sent.
    alice.publish("home/attic/temperature", b"21", qos=1)
    bob.expect_none(0.5)
    again = login(client_factory, broker, "alice", "s3cret", client_id="alice-2", wait=False)
    assert again.connected.wait(5) and again.connack[1].value == 0x86
    login(client_factory, broker, "alice", "rotated", client_id="alice-3")


def test_a_broken_acl_file_stops_the_start_with_its_line(tmp_path, access_files):
    passwords, acl = access_files
    acl.write_text("user alice\ntopic read home/#/x\n")
    result = subprocess.run([sys.executable, "-m", "broker", "--bind", "127.0.0.1:0", "--password-file",
                             str(passwords), "--acl-file", str(acl)],
                            capture_output=True, text=True, timeout=20, cwd=Path(__file__).resolve().parents[3])
    assert result.returncode == 2
    assert f"{acl}:2:" in result.stderr and "not a topic filter" in result.stderr


def _wait_for_line(broker, text):
    deadline = time.monotonic() + 5
    while not any(text in line for line in broker.lines):
        assert time.monotonic() < deadline, f"no {text!r} in:\n" + "\n".join(broker.lines)
        time.sleep(0.05)


def test_connections_and_refusals_are_logged_as_mosquitto_does(broker, client_factory, raw_factory):
    alice = login(client_factory, broker, "alice", "s3cret", client_id="alice-log")
    _wait_for_line(broker, "client 'alice-log' connected from 127.0.0.1:")
    assert any("(MQTT 5.0, clean yes, keep alive 60, user 'alice')" in line for line in broker.lines)
    alice.disconnect()
    _wait_for_line(broker, "client 'alice-log' from 127.0.0.1:")
    _wait_for_line(broker, "disconnected: normal_disconnection")
    raw_factory(broker.port, 4).connect("guesser", username="alice", password=b"guess")
    _wait_for_line(broker, "client 'guesser' from 127.0.0.1 refused: bad username or password (user 'alice')")
    assert not any("b'guess'" in line for line in broker.lines)  # the password itself is never logged


def test_connection_messages_can_be_turned_off(start_broker, client_factory):
    quiet = start_broker("--no-connection-messages")
    client_factory(quiet.port, client_id="silent").connect().disconnect()
    time.sleep(0.3)
    assert not any("silent" in line for line in quiet.lines)


def test_a_restored_session_is_judged_as_its_user_after_a_restart(start_broker, client_factory, access_files,
                                                                  tmp_path):
    """Offline messages for a persistent session go by its user's rules, restart or not."""
    passwords, acl = access_files
    broker = start_broker("--password-file", str(passwords), "--acl-file", str(acl), "--persist",
                          str(tmp_path / "state"), anonymous=False)
    bob = client_factory(broker.port, client_id="bob-persistent", version=4)
    bob.client.username_pw_set("bob", "hunter2")
    bob.client._clean_session = False
    bob.connect(clean=False)
    bob.subscribe("#", qos=1)  # filtered per message: bob may read home/+/temperature only
    bob.disconnect()
    broker.restart()
    alice = login(client_factory, broker, "alice", "s3cret")
    alice.publish("public/news", b"for anonymous readers", qos=1)
    alice.publish("home/attic/temperature", b"18", qos=1)
    back = client_factory(broker.port, client_id="bob-persistent", version=4)
    back.client.username_pw_set("bob", "hunter2")
    back.connect(clean=False)
    assert back.session_present
    [message] = back.expect(1)
    assert (message.topic, message.payload) == ("home/attic/temperature", b"18")
    back.expect_none(0.5)


def test_long_client_ids_are_cut_short_in_the_log(start_broker, raw_factory):
    # A 65,000-character id logged whole on every connect would fill the reader's pipe
    # after one client (the broker writes its log from the event loop) and swell the log.
    broker = start_broker()
    for _ in range(3):
        assert raw_factory(broker.port, 5).connect("a" * 65000).reason_code == 0
    _wait_for_line(broker, "… (65000 characters) connected from 127.0.0.1:")
    assert max(len(line) for line in broker.lines) < 1000
