"""Acknowledged means durable: `kill -9` of `python -m broker --persist` loses nothing it acked."""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.engine.journal import read_records
from tests.broker.conftest import BrokerProcess

COUNT = 1000


def persistent(port: int, client_id: str) -> tuple[mqtt.Client, list[bytes], threading.Event]:
    """A 3.1.1 client with clean session 0, connected; it records every payload it gets."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=mqtt.MQTTv311)
    got: list[bytes] = []
    connected = threading.Event()
    client.on_message = lambda _c, _u, msg: got.append(msg.payload)
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(5)
    return client, got, connected


def publish_all(port: int, qos: int, count: int = COUNT) -> None:
    """Publish `count` messages pipelined; returns once every PUBACK/PUBCOMP is in."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish("crash/t", b"%d" % i, qos) for i in range(count)]
    for info in infos:
        info.wait_for_publish(30)
        assert info.is_published()
    client.loop_stop()


def subscribe_offline(port: int, qos: int) -> None:
    client, _, _ = persistent(port, "keeper")
    acked = threading.Event()
    client.on_subscribe = lambda *_args: acked.set()
    result, _ = client.subscribe("crash/#", qos)
    assert result == mqtt.MQTT_ERR_SUCCESS
    assert acked.wait(5)
    client.disconnect()
    client.loop_stop()


def collect(port: int, expected: int, timeout: float = 20.0) -> list[bytes]:
    client, got, _ = persistent(port, "keeper")
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # anything more (a duplicate) would arrive now
    client.disconnect()
    client.loop_stop()
    return got


def crash_and_restart(broker: BrokerProcess) -> BrokerProcess:
    broker.kill()  # SIGKILL: no shutdown snapshot
    return broker.restart()


@pytest.mark.parametrize("qos", [1, 2])
def test_every_message_acknowledged_before_a_kill_is_delivered_after_the_restart(start_broker, tmp_path, qos):
    broker = start_broker("--persist", str(tmp_path / "state"))
    subscribe_offline(broker.port, qos)
    publish_all(broker.port, qos)
    crash_and_restart(broker)
    got = collect(broker.port, COUNT)
    expected = [b"%d" % i for i in range(COUNT)]
    if qos == 2:
        assert got == expected  # exactly once, in order
    else:
        assert sorted(set(got)) == sorted(expected)


def frames_end(log: Path) -> int:
    """Where the log's intact frames end (the preallocated zeros follow)."""
    return read_records(log.read_bytes())[1]


def test_a_torn_final_write_is_ignored_and_everything_before_it_replays(start_broker, tmp_path):
    state = tmp_path / "state"
    broker = start_broker("--persist", str(state))
    subscribe_offline(broker.port, 1)
    publish_all(broker.port, 1, 100)
    broker.kill()
    [log] = list(state.glob("roost-broker.*.log"))
    with open(log, "r+b") as f:
        f.seek(frames_end(log))  # into the zeros the log is preallocated with
        f.write(b"\x40\x00\x00\x00\x12\x34")  # a record header whose body never made it
    broker.restart()
    assert any("ignored 6 bytes" in line for line in broker.lines)
    assert sorted(set(collect(broker.port, 100))) == sorted(b"%d" % i for i in range(100))


def test_a_log_cut_in_the_middle_of_its_last_group_commit_replays_every_one_before_it(start_broker, tmp_path):
    state = tmp_path / "state"
    broker = start_broker("--persist", str(state))
    subscribe_offline(broker.port, 1)
    publish_all(broker.port, 1, 100)
    broker.kill()
    [log] = list(state.glob("roost-broker.*.log"))
    with open(log, "r+b") as f:
        f.seek(frames_end(log) - 3)
        f.write(bytes(3))  # the last frame (one group commit) is torn: its end never written
    intact, _ = read_records(log.read_bytes())
    kept = [base64.b64decode(r[3]) for r in intact if r[0] == "D"]
    assert 0 < len(kept) < 100 and kept == [b"%d" % i for i in range(len(kept))]
    broker.restart()
    got = collect(broker.port, len(kept))
    assert sorted(set(got)) == sorted(kept)


def test_a_garbage_tail_is_ignored(start_broker, tmp_path):
    state = tmp_path / "state"
    broker = start_broker("--persist", str(state))
    subscribe_offline(broker.port, 1)
    publish_all(broker.port, 1, 10)
    broker.kill()
    [log] = list(state.glob("roost-broker.*.log"))
    with open(log, "r+b") as f:
        f.seek(frames_end(log))
        f.write(os.urandom(300))
    broker.restart()
    assert len(set(collect(broker.port, 10))) == 10


def test_a_subscription_is_on_disk_once_subacked_and_a_session_once_connacked(start_broker, tmp_path):
    broker = start_broker("--persist", str(tmp_path / "state"))
    client, _, _ = persistent(broker.port, "keeper")
    subacked = threading.Event()
    client.on_subscribe = lambda *_args: subacked.set()
    client.subscribe("crash/#", 1)
    assert subacked.wait(5)
    broker.kill()
    client.loop_stop()
    broker.restart()
    publish_all(broker.port, 1, 1)
    again, got, _ = persistent(broker.port, "keeper")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    again.loop_stop()
    assert got == [b"0"]


def test_a_session_is_on_disk_once_connacked(start_broker, tmp_path):
    broker = start_broker("--persist", str(tmp_path / "state"))
    persistent(broker.port, "fresh")[0].loop_stop()
    broker.kill()
    broker.restart()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fresh", clean_session=False,
                         protocol=mqtt.MQTTv311)
    present: list[bool] = []
    done = threading.Event()

    def on_connect(_c, _u, flags, _reason, _props):
        present.append(bool(flags.session_present))
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert done.wait(5)
    client.disconnect()
    client.loop_stop()
    assert present == [True]


def test_durability_none_keeps_the_snapshot_store_and_works(start_broker, tmp_path):
    state = tmp_path / "state"
    broker = start_broker("--persist", str(state), "--durability", "none")
    subscribe_offline(broker.port, 1)
    publish_all(broker.port, 1, 100)
    assert not list(state.glob("roost-broker.*.log"))
    broker.restart()  # a clean stop saves the snapshot
    assert (state / "roost-broker.json").exists()
    assert len(set(collect(broker.port, 100))) == 100


def test_durability_none_loses_what_came_after_the_last_save_on_a_kill(start_broker, tmp_path):
    """The negative case: without the journal, a kill -9 loses the acknowledged messages."""
    broker = start_broker("--persist", str(tmp_path / "state"), "--durability", "none")
    subscribe_offline(broker.port, 1)
    publish_all(broker.port, 1, 10)
    crash_and_restart(broker)
    assert collect(broker.port, 10, timeout=1.0) == []


def test_durability_interval_starts_and_keeps_messages_across_a_clean_restart(start_broker, tmp_path):
    broker = start_broker("--persist", str(tmp_path / "state"), "--durability", "interval")
    subscribe_offline(broker.port, 1)
    publish_all(broker.port, 1, 100)
    broker.restart()
    assert len(set(collect(broker.port, 100))) == 100
