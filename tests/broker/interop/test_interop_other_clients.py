"""Interoperability with gmqtt and with Mosquitto's command-line clients."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

needs_mosquitto_clients = pytest.mark.skipif(
    shutil.which("mosquitto_pub") is None, reason="mosquitto-clients not installed"
)


async def test_gmqtt_publishes_and_receives_with_mqtt5_properties(shared_broker, unique):
    from gmqtt import Client as GmqttClient

    received: asyncio.Queue = asyncio.Queue()
    sub = GmqttClient(unique + "-sub")
    sub.on_message = lambda client, topic, payload, qos, properties: received.put_nowait(
        (topic, payload, qos, properties)
    )
    await sub.connect("127.0.0.1", shared_broker.port, version=5)
    sub.subscribe(unique + "/#", qos=1)
    await asyncio.sleep(0.2)
    pub = GmqttClient(unique + "-pub")
    await pub.connect("127.0.0.1", shared_broker.port, version=5)
    pub.publish(unique + "/g", b"from gmqtt", qos=1, user_property=[("k", "v")],
                content_type="text/plain")
    topic, payload, qos, properties = await asyncio.wait_for(received.get(), 5)
    assert (topic, payload, qos) == (unique + "/g", b"from gmqtt", 1)
    assert properties["content_type"] == ["text/plain"]
    assert properties["user_property"] == [("k", "v")]
    await pub.disconnect()
    await sub.disconnect()


async def test_gmqtt_receives_retained_messages_over_mqtt311(shared_broker, unique):
    from gmqtt import Client as GmqttClient
    from gmqtt.mqtt.constants import MQTTv311

    received: asyncio.Queue = asyncio.Queue()
    pub = GmqttClient(unique + "-pub")
    await pub.connect("127.0.0.1", shared_broker.port, version=MQTTv311)
    pub.publish(unique, b"kept", qos=1, retain=True)
    await asyncio.sleep(0.2)
    sub = GmqttClient(unique + "-sub")
    sub.on_message = lambda client, topic, payload, qos, properties: received.put_nowait(payload)
    await sub.connect("127.0.0.1", shared_broker.port, version=MQTTv311)
    sub.subscribe(unique, qos=1)
    assert await asyncio.wait_for(received.get(), 5) == b"kept"
    await pub.disconnect()
    await sub.disconnect()


def _sub(port: int, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-W", "5", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _pub(port: int, *args: str) -> None:
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), *args],
                   check=True, timeout=10)


@needs_mosquitto_clients
@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_sub_receives_from_mosquitto_pub(shared_broker, unique, version):
    sub = _sub(shared_broker.port, "-V", version, "-t", unique, "-C", "1", "-q", "1")
    import time

    time.sleep(0.4)
    _pub(shared_broker.port, "-V", version, "-t", unique, "-m", "hi", "-q", "1")
    out, err = sub.communicate(timeout=10)
    assert out == b"hi\n", err


@needs_mosquitto_clients
def test_mosquitto_sub_reads_a_retained_message(shared_broker, unique):
    _pub(shared_broker.port, "-t", unique, "-m", "kept", "-r", "-q", "2")
    sub = _sub(shared_broker.port, "-t", unique, "-C", "1", "-v")
    out, err = sub.communicate(timeout=10)
    assert out == f"{unique} kept\n".encode(), err


@needs_mosquitto_clients
def test_mosquitto_sub_sees_user_properties_over_mqtt5(shared_broker, unique):
    sub = _sub(shared_broker.port, "-V", "mqttv5", "-t", unique, "-C", "1",
               "-F", "%P %p")
    import time

    time.sleep(0.4)
    _pub(shared_broker.port, "-V", "mqttv5", "-t", unique, "-m", "x",
         "-D", "publish", "user-property", "room", "kitchen")
    out, err = sub.communicate(timeout=10)
    assert b"room:kitchen" in out, (out, err)
