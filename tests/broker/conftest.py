"""Fixtures for broker tests: a real `python -m broker` process and real MQTT clients."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on (mqtts?|wss?)://([\d.]+):(\d+)")
PORT_ATTRIBUTE = {"mqtt": "port", "mqtts": "tls_port", "ws": "ws_port", "wss": "wss_port"}


class BrokerProcess:
    """`python -m broker` on free loopback ports, started and stopped by the test."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.port = 0
        self.tls_port = 0
        self.ws_port = 0
        self.wss_port = 0
        self.host = "127.0.0.1"

    def start(self, timeout: float = 10.0) -> BrokerProcess:
        self.lines = []
        self.port = self.tls_port = self.ws_port = self.wss_port = 0
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker", *self.args],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        found = threading.Event()
        expected = sum(1 for a in self.args if a == "--bind") or 1

        def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            seen = 0
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                match = LISTENING.search(line)
                if match:
                    setattr(self, PORT_ATTRIBUTE[match.group(1)], int(match.group(3)))
                    seen += 1
                    if seen == expected:
                        found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(timeout) or not (self.port or self.tls_port or self.ws_port or self.wss_port):
            self.kill()
            raise RuntimeError("broker did not start:\n" + "\n".join(self.lines))
        return self

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> BrokerProcess:
        """Stop and start again on the same ports."""
        ports = {"tls": self.tls_port, "ws": self.ws_port, "wss": self.wss_port}
        assert self.stop() == 0
        args = []
        for arg in self.args:
            if arg.endswith(":0"):
                scheme = arg.split("://", 1)[0] if "://" in arg else ""
                port = ports.get(scheme, self.port)
                arg = f"{arg[:-2]}:{port}"
            args.append(arg)
        self.args = args
        return self.start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


FAST = ["--sys-interval", "1", "--connect-timeout", "2"]


@pytest.fixture
def start_broker() -> Iterator[Callable[..., BrokerProcess]]:
    """Start a broker with extra CLI arguments; `--bind 127.0.0.1:0 --anonymous` by default."""
    started: list[BrokerProcess] = []

    def start(*extra: str, bind: list[str] | None = None, anonymous: bool = True) -> BrokerProcess:
        args: list[str] = []
        for b in bind or ["127.0.0.1:0"]:
            args += ["--bind", b]
        if anonymous:
            args.append("--anonymous")
        process = BrokerProcess([*args, *FAST, *extra]).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture(scope="session")
def shared_broker() -> Iterator[BrokerProcess]:
    """One plain anonymous broker for tests that only need topics of their own."""
    process = BrokerProcess(["--bind", "127.0.0.1:0", "--anonymous", *FAST]).start()
    yield process
    process.kill()


class Client:
    """A paho-mqtt client driven synchronously: connect, subscribe, publish, expect."""

    def __init__(
        self, port: int, client_id: str = "", version: int = 5, host: str = "127.0.0.1",
        transport: str = "tcp",
    ) -> None:
        protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        kwargs: dict[str, Any] = {"transport": transport}
        if version != 5:
            kwargs["clean_session"] = True
        self.version = version
        self.port = port
        self.host = host
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **kwargs
        )
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack: Any = None
        self.disconnect_reason: Any = None
        self.disconnect_props: Any = None
        self.subacks: dict[int, list[Any]] = {}
        self.unsubacks: dict[int, list[Any]] = {}
        self._acked = threading.Condition()
        c = self.client
        c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack = (flags, reason, props)
        self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, flags: Any, reason: Any, props: Any) -> None:
        self.disconnect_reason = reason
        self.disconnect_props = props
        self.disconnected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: Any, props: Any) -> None:
        with self._acked:
            self.subacks[mid] = list(codes)
            self._acked.notify_all()

    def _on_unsubscribe(self, _c: Any, _u: Any, mid: int, codes: Any, props: Any) -> None:
        with self._acked:
            self.unsubacks[mid] = list(codes)
            self._acked.notify_all()

    def connect(
        self, clean: bool = True, keepalive: int = 60, properties: Properties | None = None,
        will: tuple[str, bytes, int, bool] | None = None, will_properties: Properties | None = None,
        tls: dict[str, Any] | None = None, timeout: float = 5.0, wait: bool = True,
    ) -> Client:
        c = self.client
        if tls is not None:
            c.tls_set(**tls)
        if will is not None:
            c.will_set(will[0], will[1], will[2], will[3], properties=will_properties)
        if self.version == 5:
            c.connect(self.host, self.port, keepalive, clean_start=clean, properties=properties)
        else:
            c._clean_session = clean
            c.connect(self.host, self.port, keepalive)
        c.loop_start()
        if wait:
            try:
                assert self.connected.wait(timeout), "no CONNACK"
                reason = self.connack[1]
                assert not reason.is_failure, f"connect refused: {reason}"
            except AssertionError:
                # paho would go on reconnecting in the background: a refused client retried
                # by a test must not come back later and take over the session it wanted.
                c.disconnect()
                c.loop_stop()
                raise
        return self

    @property
    def session_present(self) -> bool:
        return bool(self.connack[0].session_present)

    def subscribe(self, topic: str, qos: int = 0, timeout: float = 5.0, **options: Any) -> list[Any]:
        if self.version == 5:
            sub_opts = mqtt.SubscribeOptions(qos=qos, **options)
            result, mid = self.client.subscribe(topic, options=sub_opts)
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        return self._wait_ack(self.subacks, mid, timeout)

    def subscribe_with_id(self, topic: str, sub_id: int, qos: int = 0) -> list[Any]:
        props = Properties(PacketTypes.SUBSCRIBE)
        props.SubscriptionIdentifier = sub_id
        result, mid = self.client.subscribe(
            topic, options=mqtt.SubscribeOptions(qos=qos), properties=props
        )
        assert result == mqtt.MQTT_ERR_SUCCESS
        return self._wait_ack(self.subacks, mid, 5.0)

    def unsubscribe(self, topic: str, timeout: float = 5.0) -> list[Any]:
        result, mid = self.client.unsubscribe(topic)
        assert result == mqtt.MQTT_ERR_SUCCESS
        return self._wait_ack(self.unsubacks, mid, timeout)

    def _wait_ack(self, acks: dict[int, list[Any]], mid: int, timeout: float) -> list[Any]:
        with self._acked:
            assert self._acked.wait_for(lambda: mid in acks, timeout), "no ack"
            return acks.pop(mid)

    def publish(
        self, topic: str, payload: bytes | str = b"", qos: int = 0, retain: bool = False,
        properties: Properties | None = None, timeout: float = 5.0,
    ) -> None:
        info = self.client.publish(topic, payload, qos, retain, properties=properties)
        info.wait_for_publish(timeout)
        assert info.is_published()

    def expect(self, count: int = 1, timeout: float = 5.0) -> list[mqtt.MQTTMessage]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"expected {count} messages, got {len(out)}: "
                                     f"{[(m.topic, m.payload) for m in out]}")
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                continue
        return out

    def collect(self, timeout: float = 1.0) -> list[mqtt.MQTTMessage]:
        """Everything that arrives within `timeout`."""
        out = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        return out

    def expect_none(self, timeout: float = 0.5) -> None:
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {msg.topic}: {msg.payload!r}")

    def disconnect(self, reason: int | None = None, properties: Properties | None = None) -> None:
        if reason is not None:
            from paho.mqtt.reasoncodes import ReasonCode as PahoReason

            rc = PahoReason(PacketTypes.DISCONNECT, identifier=reason)
            self.client.disconnect(reasoncode=rc, properties=properties)
        else:
            self.client.disconnect(properties=properties)
        self.disconnected.wait(5)
        self.client.loop_stop()

    def drop(self) -> None:
        """Close the socket without DISCONNECT (an ungraceful end)."""
        sock = self.client.socket()
        self.client.loop_stop()
        if sock is not None:
            sock.close()


@pytest.fixture
def client_factory() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(port: int, client_id: str = "", version: int = 5, transport: str = "tcp") -> Client:
        c = Client(port, client_id, version, transport=transport)
        made.append(c)
        return c

    yield make
    for c in made:
        c.client.disconnect()
    for c in made:
        c.client.loop_stop()


def props(packet_type: int, **values: Any) -> Properties:
    """A paho Properties object, e.g. props(PacketTypes.PUBLISH, MessageExpiryInterval=5)."""
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A topic prefix of this test's own on a shared broker."""
    return "t/" + re.sub(r"\W+", "_", request.node.name)[:60]


class RawClient:
    """A socket speaking MQTT through Roost's own codec, for what real clients refuse to send."""

    def __init__(self, port: int, level: int = 5, host: str = "127.0.0.1") -> None:
        import socket

        from broker.mqtt import StreamDecoder

        self.level = level
        self.sock = socket.create_connection((host, port), timeout=5)
        self.decoder = StreamDecoder(server_side=False, protocol_level=level)
        self.pending: list[Any] = []

    def send(self, data: bytes | Any) -> None:
        from broker.mqtt import encode

        if not isinstance(data, bytes | bytearray):
            data = encode(data, self.level)
        self.sock.sendall(data)

    def connect(self, client_id: str = "raw", **kwargs: Any) -> Any:
        from broker.mqtt import Connect

        self.send(Connect(protocol_level=self.level, client_id=client_id, **kwargs))
        return self.receive()

    def receive(self, timeout: float = 5.0) -> Any:
        """The next packet, or None once the broker closed the connection."""

        self.sock.settimeout(timeout)
        while not self.pending:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return None
            if not data:
                return None
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def closed(self, timeout: float = 5.0) -> bool:
        """Whether the broker closes the connection within `timeout` (packets skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            packet = self.receive(max(0.01, deadline - time.monotonic()))
            if packet is None:
                return self._really_closed()
        return False

    def _really_closed(self) -> bool:

        self.sock.settimeout(0.05)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_factory() -> Iterator[Callable[..., RawClient]]:
    made: list[RawClient] = []

    def make(port: int, level: int = 5, host: str = "127.0.0.1") -> RawClient:
        c = RawClient(port, level, host)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
