"""Bridges from `python -m broker` to Debian's Mosquitto, configured in a mosquitto.conf
`connection` section, in both directions, with prefixes, notifications and reconnection."""

from __future__ import annotations

import time

import pytest

from tests.broker.interop.cuttable_link import CuttableLink
from tests.broker.interop.mosquitto_process import Mosquitto, free_port
from tests.broker.net.tls_certs import make_pki


@pytest.fixture
def remote(tmp_path):
    mosquitto = Mosquitto(tmp_path, free_port()).start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(params=[4, 5], ids=["mqttv311", "mqttv50"])
def bridged(request, start_broker, remote, tmp_path):
    version = "mqttv50" if request.param == 5 else "mqttv311"
    conf = tmp_path / "edge.conf"
    conf.write_text(f"""\
allow_anonymous true
connection cloud
address 127.0.0.1:{remote.port}
bridge_protocol_version {version}
cleansession true
restart_timeout 1
topic sensors/# out 1
topic commands/# in 1
topic # both 1 edge/ cloud/
""")
    broker = start_broker("--config", str(conf), anonymous=False)
    return broker, remote


def _wait_connected(client, topic="$SYS/broker/connection/cloud/state", value=b"1", timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"{topic} never became {value!r}"
        for message in client.collect(min(left, 0.5)):
            if message.topic == topic and message.payload == value:
                return



def _edge_client(client_factory, broker, client_id, bridge="cloud"):
    """A client of the bridging broker, returned once the bridge says it is connected."""
    local = client_factory(broker.port, client_id=client_id).connect()
    local.subscribe(f"$SYS/broker/connection/{bridge}/state", qos=1)
    _wait_connected(local, topic=f"$SYS/broker/connection/{bridge}/state")
    return local


def _cloud_client(client_factory, port, client_id, topic_filter, **connect):
    cloud = client_factory(port, client_id=client_id).connect(**connect)
    cloud.subscribe(topic_filter, qos=1)
    return cloud

def test_messages_go_out_and_come_in(bridged, client_factory):
    broker, remote = bridged
    local = _edge_client(client_factory, broker, "edge-app")
    local.subscribe("commands/#", qos=1)
    cloud = _cloud_client(client_factory, remote.port, "cloud-app", "sensors/#")
    local.publish("sensors/t1", b"21.5", qos=1)
    [out] = cloud.expect(1, timeout=5)
    assert (out.topic, out.payload) == ("sensors/t1", b"21.5")
    cloud.publish("commands/reboot", b"now", qos=1)
    [came_in] = local.expect(1, timeout=5)
    assert (came_in.topic, came_in.payload) == ("commands/reboot", b"now")
    # Not bridged: stays where it was published.
    local.publish("private/x", b"local only", qos=1)
    cloud.subscribe("private/#", qos=1)
    cloud.expect_none(0.5)


def test_prefixes_map_topics_both_ways_without_loops(bridged, client_factory):
    broker, remote = bridged
    local = _edge_client(client_factory, broker, "edge-prefix")
    local.subscribe("edge/#", qos=1)
    cloud = _cloud_client(client_factory, remote.port, "cloud-prefix", "cloud/#")
    local.publish("edge/up", b"from the edge", qos=1)
    assert [(m.topic, m.payload) for m in cloud.expect(1)] == [("cloud/up", b"from the edge")]
    assert [(m.topic, m.payload) for m in local.expect(1)] == [("edge/up", b"from the edge")]  # its own
    cloud.publish("cloud/down", b"from the cloud", qos=1)
    assert [(m.topic, m.payload) for m in local.expect(1)] == [("edge/down", b"from the cloud")]
    assert [(m.topic, m.payload) for m in cloud.expect(1)] == [("cloud/down", b"from the cloud")]
    # Neither side sees a second copy: the bridge does not send back what it brought in.
    local.expect_none(0.7)
    cloud.expect_none(0.1)


def test_the_bridge_reconnects_and_says_so_in_its_notification_topic(bridged, client_factory):
    broker, remote = bridged
    local = _edge_client(client_factory, broker, "edge-watch")
    remote.stop()
    _wait_connected(local, value=b"0")
    remote.start()
    _wait_connected(local, value=b"1", timeout=15)
    cloud = _cloud_client(client_factory, remote.port, "cloud-again", "sensors/#")
    local.publish("sensors/after", b"back", qos=1)
    assert cloud.expect(1, timeout=5)[0].payload == b"back"


@pytest.fixture
def cut_bridge(start_broker, remote, tmp_path):
    """A bridge to `remote` through a link the test can cut; `conf` holds the bridge options."""
    link = CuttableLink(remote.port)

    def start(conf: str):
        path = tmp_path / "edge-cut.conf"
        path.write_text(f"allow_anonymous true\nconnection cloud\naddress 127.0.0.1:{link.port}\n"
                        f"restart_timeout 1\ntopic sensors/# out 1\n{conf}")
        return start_broker("--config", str(path), anonymous=False), link

    yield start
    link.close()


@pytest.mark.parametrize("version", ["mqttv311", "mqttv50"])
def test_messages_for_an_unreachable_remote_are_held_until_it_answers(
        cut_bridge, remote, client_factory, version):
    broker, link = cut_bridge(f"bridge_protocol_version {version}\ncleansession true\n"
                              "local_cleansession false\n")
    local = _edge_client(client_factory, broker, "edge-hold")
    cloud = _cloud_client(client_factory, remote.port, "cloud-watch", "sensors/#")
    link.cut()
    _wait_connected(local, value=b"0")
    local.publish("sensors/held", b"1", qos=1)
    local.publish("sensors/lost", b"qos 0 is not held", qos=0)
    local.publish("sensors/held", b"2", qos=1)
    link.mend()
    _wait_connected(local, value=b"1", timeout=15)
    assert [m.payload for m in cloud.expect(2, timeout=5)] == [b"1", b"2"]
    cloud.expect_none(0.5)


def test_a_clean_local_session_drops_what_the_remote_could_not_take(cut_bridge, remote, client_factory):
    # Mosquitto's local_cleansession defaults to cleansession: true here, so nothing is held.
    broker, link = cut_bridge("cleansession true\n")
    local = _edge_client(client_factory, broker, "edge-clean")
    cloud = _cloud_client(client_factory, remote.port, "cloud-watch", "sensors/#")
    link.cut()
    _wait_connected(local, value=b"0")
    local.publish("sensors/dropped", b"not held", qos=1)
    link.mend()
    _wait_connected(local, value=b"1", timeout=15)
    local.publish("sensors/now", b"live", qos=1)
    assert [m.payload for m in cloud.expect(1, timeout=5)] == [b"live"]
    cloud.expect_none(0.5)


def test_retained_messages_of_outgoing_topics_go_out_on_every_connection(
        cut_bridge, remote, client_factory):
    # As Mosquitto's bridge, which subscribes locally again at each connection.
    broker, link = cut_bridge("")
    local = _edge_client(client_factory, broker, "edge-retain")
    local.publish("sensors/state", b"on", qos=1, retain=True)
    local.publish("other/state", b"not bridged", qos=1, retain=True)
    cloud = _cloud_client(client_factory, remote.port, "cloud-watch", "sensors/#")
    [first] = cloud.expect(1, timeout=5)  # the remote's retained copy
    assert (first.topic, first.payload, first.retain) == ("sensors/state", b"on", True)
    link.cut()
    _wait_connected(local, value=b"0")
    link.mend()
    _wait_connected(local, value=b"1", timeout=15)
    [again] = cloud.expect(1, timeout=5)
    assert (again.topic, again.payload) == ("sensors/state", b"on")
    cloud.expect_none(0.5)


def test_a_bridge_over_mutual_tls(start_broker, client_factory, tmp_path):
    """bridge_cafile / bridge_certfile / bridge_keyfile against a Mosquitto that requires a
    client certificate."""
    pki = make_pki(tmp_path)
    port = free_port()
    remote = Mosquitto(tmp_path, port, extra=(
        f"allow_anonymous true\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
        f"cafile {pki.ca}\nrequire_certificate true\n")).start()
    try:
        conf = tmp_path / "edge-tls.conf"
        conf.write_text(f"""\
allow_anonymous true
connection secure
address 127.0.0.1:{port}
bridge_cafile {pki.ca}
bridge_certfile {pki.client_cert}
bridge_keyfile {pki.client_key}
topic telemetry/# out 1
""")
        broker = start_broker("--config", str(conf), anonymous=False)
        local = _edge_client(client_factory, broker, "edge-tls", bridge="secure")
        cloud = _cloud_client(client_factory, port, "cloud-tls", "telemetry/#", tls={
            "ca_certs": str(pki.ca), "certfile": str(pki.client_cert), "keyfile": str(pki.client_key)})
        local.publish("telemetry/t", b"over mtls", qos=1)
        assert cloud.expect(1, timeout=5)[0].payload == b"over mtls"
    finally:
        remote.stop()


@pytest.mark.parametrize("outgoing_retain", [True, False])
def test_bridge_outgoing_retain_false_forwards_without_the_retain_flag(
        start_broker, remote, tmp_path, client_factory, outgoing_retain):
    conf = tmp_path / "edge.conf"
    conf.write_text(f"allow_anonymous true\nconnection cloud\naddress 127.0.0.1:{remote.port}\n"
                    f"bridge_outgoing_retain {str(outgoing_retain).lower()}\ntopic sensors/# out 1\n")
    broker = start_broker("--config", str(conf), anonymous=False)
    local = _edge_client(client_factory, broker, "edge-pub")
    watcher = _cloud_client(client_factory, remote.port, "cloud-live", "sensors/#")
    local.publish("sensors/t", b"21", qos=1, retain=True)
    assert watcher.expect(1)[0].payload == b"21"  # forwarded either way
    late = _cloud_client(client_factory, remote.port, "cloud-late", "sensors/#")
    if outgoing_retain:
        assert late.expect(1)[0].retain
    else:
        late.expect_none(1.0)  # the remote broker never kept it
