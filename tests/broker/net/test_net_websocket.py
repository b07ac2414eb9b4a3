"""MQTT over WebSocket (MQTT 5.0 section 6) on ws:// and wss:// listeners, with paho-mqtt's
WebSocket transport and a raw wsproto client for what paho will not send."""

from __future__ import annotations

import socket
import ssl

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from broker.mqtt import Connack, Connect, Publish, StreamDecoder, Subscribe, encode
from broker.mqtt.packets import Subscription
from tests.broker.net.tls_certs import assert_refused_in_handshake, make_pki


class RawWebSocket:
    """A WebSocket client over a plain socket, frame by frame."""

    def __init__(self, port: int, subprotocols: tuple[str, ...] = ("mqtt",)) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: list[object] = []
        self.sock.sendall(self.ws.send(Request(host="localhost", target="/mqtt", subprotocols=list(subprotocols))))

    def next_event(self) -> object | None:
        while not self.events:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return None
            if not data:
                return None  # the TCP connection closed
            self.ws.receive_data(data)
            self.events.extend(self.ws.events())
        return self.events.pop(0)

    def send(self, event: object) -> None:
        self.sock.sendall(self.ws.send(event))

    def mqtt(self, level: int = 4) -> list[object]:
        """MQTT packets from the binary messages that arrive until the broker goes quiet."""
        decoder = StreamDecoder(server_side=False, protocol_level=level)
        packets: list[object] = []
        self.sock.settimeout(1)
        while (event := self.next_event()) is not None:
            if isinstance(event, BytesMessage):
                packets.extend(decoder.feed(event.data))
            elif isinstance(event, CloseConnection):
                packets.append(event)
                break
        return packets

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def ws_broker(start_broker):
    return start_broker(bind=["ws://127.0.0.1:0", "127.0.0.1:0"])


@pytest.mark.parametrize("version", [4, 5], ids=["mqtt311", "mqtt5"])
def test_paho_over_websocket_publishes_and_subscribes(ws_broker, client_factory, version):
    ws = client_factory(ws_broker.ws_port, client_id=f"ws-{version}", version=version, transport="websockets")
    ws.client.ws_set_options(path="/mqtt")
    ws.connect()
    assert [getattr(c, "value", c) for c in ws.subscribe("ws/#", qos=1)] == [1]
    ws.publish("ws/self", b"over websocket", qos=1)
    assert ws.expect(1)[0].payload == b"over websocket"


def test_websocket_and_tcp_clients_share_one_topic_space(ws_broker, client_factory):
    ws = client_factory(ws_broker.ws_port, client_id="ws-sub", transport="websockets")
    ws.connect()
    ws.subscribe("shared/#", qos=1)
    tcp = client_factory(ws_broker.port, client_id="tcp-pub").connect()
    tcp.subscribe("back/#", qos=1)
    tcp.publish("shared/x", b"from tcp", qos=1)
    assert ws.expect(1)[0].payload == b"from tcp"
    ws.publish("back/y", b"x" * 300_000, qos=1)  # one message over many frames
    assert tcp.expect(1)[0].payload == b"x" * 300_000


def test_packets_split_across_frames_and_frames_holding_several_packets(ws_broker):
    """The byte stream is what counts, not the framing [MQTT-6.0.0-2]."""
    raw = RawWebSocket(ws_broker.ws_port)
    assert isinstance(raw.next_event(), AcceptConnection)
    connect = encode(Connect(protocol_level=4, client_id="framer"), 4)
    raw.send(BytesMessage(data=connect[:5], message_finished=False))
    raw.send(BytesMessage(data=connect[5:]))
    subscribe = encode(Subscribe(packet_id=1, subscriptions=[Subscription("frames/#", 0)]), 4)
    publishes = b"".join(encode(Publish(topic="frames/t", payload=bytes([i]), qos=0), 4) for i in range(3))
    raw.send(BytesMessage(data=subscribe + publishes))
    packets = raw.mqtt()
    assert isinstance(packets[0], Connack)
    assert [p.payload for p in packets if isinstance(p, Publish)] == [b"\x00", b"\x01", b"\x02"]
    raw.close()


def test_an_upgrade_without_the_mqtt_subprotocol_is_refused(ws_broker):
    raw = RawWebSocket(ws_broker.ws_port, subprotocols=("chat",))
    event = raw.next_event()
    assert isinstance(event, RejectConnection) and event.status_code == 400
    raw.close()


def test_a_text_frame_closes_the_connection_with_1003(ws_broker):
    raw = RawWebSocket(ws_broker.ws_port)
    assert isinstance(raw.next_event(), AcceptConnection)
    raw.send(TextMessage(data="CONNECT"))  # [MQTT-6.0.0-1]: binary frames only
    event = raw.next_event()
    assert isinstance(event, CloseConnection) and event.code == 1003
    assert raw.next_event() is None  # and the broker closes the connection
    assert ws_broker.alive


def test_a_ping_gets_a_pong_and_a_close_gets_a_close(ws_broker):
    raw = RawWebSocket(ws_broker.ws_port)
    assert isinstance(raw.next_event(), AcceptConnection)
    raw.send(Ping(payload=b"are you there"))
    pong = raw.next_event()
    assert isinstance(pong, Pong) and pong.payload == b"are you there"
    raw.send(CloseConnection(code=1000))
    closing = raw.next_event()
    assert isinstance(closing, CloseConnection) and closing.code == 1000
    raw.close()


def _connected(port, client_id):
    """A raw WebSocket client, upgraded and past its MQTT CONNACK."""
    raw = RawWebSocket(port)
    assert isinstance(raw.next_event(), AcceptConnection)
    raw.send(BytesMessage(data=encode(Connect(protocol_level=4, client_id=client_id), 4)))
    assert isinstance(raw.mqtt()[0], Connack)
    return raw


def test_the_broker_closes_a_websocket_it_drops_with_a_close_frame(ws_broker):
    first = _connected(ws_broker.ws_port, "twice")
    second = _connected(ws_broker.ws_port, "twice")
    [closing] = first.mqtt()  # taken over: a close frame, not a bare TCP close
    assert isinstance(closing, CloseConnection)
    first.close()
    second.close()


def test_plain_mqtt_sent_to_a_websocket_port_gets_no_connack(ws_broker):
    with socket.create_connection(("127.0.0.1", ws_broker.ws_port), timeout=3) as sock:
        sock.sendall(encode(Connect(protocol_level=4, client_id="lost"), 4) + b"\r\n\r\n")
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    assert not received.startswith(b"\x20")
    assert ws_broker.alive


def test_wss_with_client_certificates(start_broker, client_factory, tmp_path):
    pki = make_pki(tmp_path)
    broker = start_broker("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
                          "--tls-ca", str(pki.ca), bind=["wss://127.0.0.1:0"], anonymous=False)
    client = client_factory(broker.wss_port, client_id="secure-ws", transport="websockets")
    client.connect(tls={"ca_certs": str(pki.ca), "certfile": str(pki.client_cert), "keyfile": str(pki.client_key)})
    client.subscribe("secure/#", qos=1)
    client.publish("secure/ws", b"wss", qos=1)
    assert client.expect(1)[0].payload == b"wss"
    no_certificate = ssl.create_default_context(cafile=str(pki.ca))
    assert_refused_in_handshake(broker.wss_port, no_certificate, b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n")
