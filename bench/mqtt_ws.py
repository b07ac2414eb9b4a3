"""Device → browser over the web service's `/mqtt`: throughput, latency, memory per connection.

Run: .venv/bin/python bench/mqtt_ws.py [--messages 200000] [--idle 500]

A platform is prepared in a temporary data directory (SQLite, `manage.py up --prepare-only`):
tenant `bench`, device `bench` with its certificate, user `bench-viewer` (viewer of the
tenant). `manage.py runbroker` and the web service (daphne, as `roost up` runs it) start on
free loopback ports; the user signs in through the portal's login form, and the session
cookie is what the browser stand-in (paho-mqtt over WebSockets, MQTT 5, path `/mqtt`,
Origin = ROOST_PUBLIC_URL) presents.

- Throughput: the device (a raw mTLS connection in a process of its own, so the publisher
  does not share the receiver's GIL) publishes `--messages` 64-byte QoS 0 messages as fast
  as the socket takes them; the browser, subscribed to `devices/bench/#`, counts what it
  receives. msg/s is received messages over the time from the first one sent to the last
  one received. Two receivers, one at a time: a lean counter (raw socket, hand-parsed
  WebSocket frames and MQTT headers: the platform's rate) and paho-mqtt (what a Python
  client library keeps up with; QoS 0 messages it falls behind on are dropped by the broker).
- Latency: the device publishes 1,000 msg/s for `--latency-seconds`, each payload holding
  its send time (perf_counter_ns; device and browser are in this one process) and a
  sequence number; a /mqtt and a direct subscriber receive the same messages at once;
  p50/p99/max of each and of the per-message difference (what /mqtt adds).
- Both are measured on the direct path too: the same paho subscriber on the broker's
  loopback bridge listener (the one /mqtt relays to), with a principal signed here with
  `broker.integration.signed_principals.sign_principal` (same ROOST_SECRET_KEY). The difference is
  what the web relay adds.
- Memory (measured first, before any flood grows the heaps): `--idle` idle /mqtt
  connections (raw WebSocket + MQTT CONNECT, wsproto), RSS of
  the web process and of the broker (with their children) before and after; KiB per connection.

Writes bench/results/mqtt_ws.json. Aims (issue 13): >= 20,000 msg/s to one browser; p99 at
1,000 msg/s <= 10 ms on top of the direct path.
"""

from __future__ import annotations

import argparse
import base64
import http.cookiejar
import json
import multiprocessing
import os
import platform
import re
import resource
import secrets
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from platform_env import REPO, free_port, manage  # noqa: E402

TENANT = "bench"
DEVICE = "bench"
USER = "bench-viewer"
PASSWORD = "bench-password-1"  # noqa: S105 (a throwaway user's, in a temporary database)
TOPIC = f"devices/{DEVICE}/data"
FILTER = f"devices/{DEVICE}/#"
PAYLOAD_BYTES = 64
READY = re.compile(r"metrics on http://")

PROCS: list[subprocess.Popen[Any]] = []


# The platform ------------------------------------------------------------------------------------


def prepare(env: dict[str, str], data_dir: Path) -> dict[str, str]:
    """Tenant, device + certificate bundle, portal user with a membership (in this process)."""
    manage(env, "up", "--prepare-only")
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    from devices.services import add_member, create_device, create_tenant
    from pki.issuance import issue_with_generated_key

    tenant = create_tenant(TENANT)
    device = create_device(tenant, DEVICE)
    issued = issue_with_generated_key(device)
    folder = data_dir / "bundle"
    folder.mkdir()
    (folder / "ca.pem").write_text(issued.root_pem)
    (folder / "device.pem").write_text(issued.certificate_pem + issued.chain_pem)
    (folder / "device.key").write_text(issued.private_key_pem)
    (folder / "device.key").chmod(0o600)
    user = get_user_model().objects.create_user(USER, password=PASSWORD)
    add_member(tenant, user, "viewer")
    connections.close_all()
    return {"ca": str(folder / "ca.pem"), "cert": str(folder / "device.pem"), "key": str(folder / "device.key"),
            "user_id": str(user.pk)}


def bridge_token(user_id: int) -> str:
    from broker.integration.signed_principals import BridgePrincipal, sign_principal

    return sign_principal(BridgePrincipal(TENANT, user_id, USER, "viewer"))


def start_broker(env: dict[str, str], data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, int]]:
    ports = {"port": free_port(), "bridge": free_port(), "metrics": free_port()}
    log = (data_dir / "broker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "runbroker", "--port", str(ports["port"]),
         "--bridge-port", str(ports["bridge"]), "--metrics-port", str(ports["metrics"]),
         "--plain-port", "0", "--wss-port", "0"],
        cwd=REPO, env=env, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    PROCS.append(proc)
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.write(line)
            log.flush()
            if READY.search(line):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60) or proc.poll() is not None:
        raise RuntimeError("runbroker did not start:\n" + (data_dir / "broker.log").read_text())
    return proc, ports


def start_web(env: dict[str, str], data_dir: Path, ports: dict[str, int]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    web_env = dict(env, ROOST_WEB_PORT=str(port), ROOST_PUBLIC_URL=f"http://127.0.0.1:{port}",
                   ROOST_BROKER_PORT=str(ports["port"]), ROOST_BROKER_BRIDGE_PORT=str(ports["bridge"]),
                   ROOST_BROKER_METRICS_PORT=str(ports["metrics"]), ROOST_DEBUG="0", ROOST_LOG_LEVEL="WARNING",
                   # One user opens all the idle connections of the memory measurement.
                   ROOST_MQTT_WS_MAX_CONNECTIONS="1000")
    log = (data_dir / "web.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "roost.asgi:application"], cwd=REPO, env=web_env, stdout=log, stderr=log)
    PROCS.append(proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc, port
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the web service did not start:\n" + (data_dir / "web.log").read_text())


def stop_all() -> None:
    for proc in reversed(PROCS):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(PROCS):
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    PROCS.clear()


def login(url: str) -> str:
    """Sign in with the portal's login form (CSRF cookie + token); the sessionid cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(url + "/accounts/login/", timeout=10).read()
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    form = urllib.parse.urlencode({"username": USER, "password": PASSWORD, "csrfmiddlewaretoken": csrf}).encode()
    opener.open(urllib.request.Request(url + "/accounts/login/", data=form,
                                       headers={"Origin": url, "Referer": url + "/accounts/login/"}), timeout=10).read()
    session = next((c.value for c in jar if c.name == "sessionid"), None)
    if not session:
        raise RuntimeError("the login form did not sign in")
    return session


# The device: a raw mTLS MQTT 5 connection ------------------------------------------------------------


def device_socket(port: int, bundle: dict[str, str]) -> ssl.SSLSocket:
    from broker.mqtt import Connack, Connect, StreamDecoder, encode

    context = ssl.create_default_context(cafile=bundle["ca"])
    context.load_cert_chain(bundle["cert"], bundle["key"])
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    sock.sendall(encode(Connect(protocol_level=5, client_id=DEVICE, keep_alive=0), 5))
    decoder = StreamDecoder(server_side=False, protocol_level=5)
    while True:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("the broker closed the device's connection before CONNACK")
        for packet in decoder.feed(data):
            if isinstance(packet, Connack):
                if packet.reason_code:
                    raise RuntimeError(f"device CONNACK {packet.reason_code:#x}")
                return sock


def disconnect(sock: ssl.SSLSocket) -> None:
    from broker.mqtt import Disconnect, encode

    try:
        sock.sendall(encode(Disconnect(), 5))
    finally:
        sock.close()


def flood(port: int, bundle: dict[str, str], count: int, seconds: float, reply: Any) -> None:
    """(child process) Publish `count` 64-byte QoS 0 messages as fast as the socket takes them;
    sends back (sent, seconds it took, perf_counter when it began)."""
    from broker.mqtt import Publish, encode

    sock = device_socket(port, bundle)
    batch = 500
    chunk = encode(Publish(TOPIC, b"x" * PAYLOAD_BYTES, qos=0), 5) * batch
    sent = 0
    started = time.perf_counter()
    deadline = started + seconds
    while sent < count and time.perf_counter() < deadline:
        n = min(batch, count - sent)
        sock.sendall(chunk if n == batch else chunk[: len(chunk) // batch * n])
        sent += n
    elapsed = time.perf_counter() - started
    disconnect(sock)
    reply.send((sent, elapsed, started))


# The subscribers -----------------------------------------------------------------------------------


class Subscriber:
    """paho-mqtt (MQTT 5) subscribed to FILTER, counting messages or reading their send time."""

    def __init__(self, port: int, *, session: str | None = None, origin: str = "", token: str = "") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        websockets = session is not None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5,
                                  transport="websockets" if websockets else "tcp")
        if websockets:
            self.client.ws_set_options(path="/mqtt", headers={"Origin": origin, "Cookie": f"sessionid={session}"})
            self.client.username_pw_set(TENANT)
        else:
            self.client.username_pw_set("portal", token)
        self.port = port
        self.count = 0
        self.first = self.last = 0.0
        self.latencies: dict[int, int] | None = None  # sequence number -> ns
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.client.on_connect = lambda _c, _u, _f, reason, _p: (not reason.is_failure) and self.connected.set()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        now = time.perf_counter()
        if self.latencies is not None:
            sent, sequence = struct.unpack_from(">qI", message.payload)
            self.latencies[sequence] = time.perf_counter_ns() - sent
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now

    def start(self) -> Subscriber:
        # A keep-alive under daphne's 20-second WebSocket ping: paho's answer to a ping is an
        # unmasked pong, which daphne would refuse (see tests/broker/integration/wss_client.py).
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError(f"the subscriber on port {self.port} was not accepted")
        self.client.subscribe(FILTER, qos=0)
        if not self.subscribed.wait(10):
            raise RuntimeError("no SUBACK")
        return self

    def reset(self, latencies: bool = False) -> None:
        self.count, self.first, self.last = 0, 0.0, 0.0
        self.latencies = {} if latencies else None

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Counter:
    """A lean MQTT 5 subscriber that only counts PUBLISH packets: raw socket, hand-parsed
    WebSocket frames (for /mqtt) and MQTT fixed headers, so the figure is the platform's
    delivery rate rather than a Python client library's parsing speed (paho tops out near
    the aim on this kind of machine)."""

    def __init__(self, port: int, *, session: str | None = None, origin: str = "", token: str = "") -> None:
        from broker.mqtt import Connect, Subscribe, Subscription, encode

        self.websocket = session is not None
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.rest = b""
        if self.websocket:
            key = base64.b64encode(os.urandom(16)).decode()
            self.sock.sendall((f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                               f"Sec-WebSocket-Protocol: mqtt\r\nOrigin: {origin}\r\n"
                               f"Cookie: sessionid={session}\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                data = self.sock.recv(65536)
                if not data:
                    raise RuntimeError("/mqtt closed the counter's handshake")
                head += data
            head, self.rest = head.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"/mqtt refused the counter: {head[:40]!r}")
        connect = Connect(protocol_level=5, client_id="", keep_alive=0,
                          username=TENANT if self.websocket else "portal",
                          password=None if self.websocket else token.encode())
        self._send(encode(connect, 5) + encode(Subscribe(1, [Subscription(FILTER, 0)]), 5))
        self.count = 0
        self.first = self.last = 0.0
        self.subscribed = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _send(self, data: bytes, opcode: int = 2) -> None:
        if self.websocket:  # a client frame is masked; a zero mask keeps the bytes as they are
            size = len(data)
            length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack(">H", size)
            data = bytes([0x80 | opcode]) + length + b"\0\0\0\0" + data
        self.sock.sendall(data)

    def start(self) -> Counter:
        self.thread.start()
        if not self.subscribed.wait(10):
            raise RuntimeError("the counter got no SUBACK")
        return self

    def _read(self) -> None:
        frames = bytearray(self.rest)
        stream = bytearray()
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                data = self.sock.recv(1 << 18)
            except TimeoutError:
                continue
            if not data:
                return
            if self.websocket:
                frames += data
                self._frames(frames, stream)
            else:
                stream += data
            self._packets(stream)

    def _frames(self, frames: bytearray, stream: bytearray) -> None:
        pos, end = 0, len(frames)
        while end - pos >= 2:
            opcode, size, start = frames[pos] & 0x0F, frames[pos + 1] & 0x7F, pos + 2
            if size == 126:
                if end - pos < 4:
                    break
                size, start = struct.unpack_from(">H", frames, pos + 2)[0], pos + 4
            elif size == 127:
                if end - pos < 10:
                    break
                size, start = struct.unpack_from(">Q", frames, pos + 2)[0], pos + 10
            if start + size > end:
                break
            if opcode in (0, 2):
                stream += frames[start:start + size]
            elif opcode == 9:
                self._send(bytes(frames[start:start + size]), opcode=10)
            pos = start + size
        del frames[:pos]

    def _packets(self, stream: bytearray) -> None:
        pos, end, count = 0, len(stream), 0
        while end - pos >= 2:
            kind, length, shift, at = stream[pos] >> 4, 0, 0, pos + 1
            while True:
                if at >= end:
                    length = -1
                    break
                byte = stream[at]
                length |= (byte & 0x7F) << shift
                at += 1
                if not byte & 0x80:
                    break
                shift += 7
            if length < 0 or at + length > end:
                break
            if kind == 3:
                count += 1
            elif kind == 9:
                self.subscribed.set()
            pos = at + length
        del stream[:pos]
        if count:
            now = time.perf_counter()
            if not self.count:
                self.first = now
            self.count += count
            self.last = now

    def reset(self) -> None:
        self.count, self.first, self.last = 0, 0.0, 0.0

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def throughput(sub: Subscriber | Counter, broker_port: int, bundle: dict[str, str], count: int, seconds: float) -> dict[str, Any]:
    sub.reset()
    receiving, sending = multiprocessing.get_context("fork").Pipe(duplex=False)
    publisher = multiprocessing.get_context("fork").Process(
        target=flood, args=(broker_port, bundle, count, seconds, sending), daemon=True)
    publisher.start()
    publisher.join(seconds + 30)
    if publisher.is_alive():
        publisher.kill()
        raise RuntimeError("the publisher did not finish")
    sent, send_seconds, send_started = receiving.recv()
    # Until everything arrived or nothing more came for a second (QoS 0 may be dropped).
    deadline = time.monotonic() + seconds
    seen = -1
    while sub.count < sent and time.monotonic() < deadline and sub.count != seen:
        seen = sub.count
        time.sleep(1.0)
    # perf_counter is CLOCK_MONOTONIC, the same clock in the publisher's process. The headline
    # rate runs from the first message sent to the last one received, so a burst the broker or
    # the relay buffered and then delivered at once does not flatter it.
    span, whole = sub.last - sub.first, sub.last - send_started
    return {"sent": sent, "received": sub.count, "send_msg_per_s": round(sent / send_seconds),
            "msg_per_s": round(sub.count / whole) if sub.count else 0, "seconds": round(whole, 2),
            "first_to_last_msg_per_s": round(sub.count / span) if span > 0 else 0}


def latency(subs: dict[str, Subscriber], broker_port: int, bundle: dict[str, str], rate: int,
            seconds: float) -> dict[str, Any]:
    """Both paths subscribed at once to the same messages, so a stall of the machine (shared,
    loaded) or of the broker hits both alike; `added` is the per-message difference."""
    from broker.mqtt import Publish, encode

    sock = device_socket(broker_port, bundle)
    for sub in subs.values():
        sub.reset(latencies=True)
    padding = b"\0" * (PAYLOAD_BYTES - 12)
    total = int(rate * seconds)
    started = time.perf_counter()
    for i in range(total):
        pause = started + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sock.sendall(encode(Publish(TOPIC, struct.pack(">qI", time.perf_counter_ns(), i) + padding, qos=0), 5))
    deadline = time.monotonic() + 5
    while any(sub.count < total for sub in subs.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    disconnect(sock)
    warm = rate // 2  # the first half second warms up

    def stats(values: list[int]) -> dict[str, float]:
        ordered = sorted(values)

        def pct(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1e6, 2) if ordered else 0.0

        return {"p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": round(ordered[-1] / 1e6, 2) if ordered else 0.0}

    result: dict[str, Any] = {"rate": rate, "sent": total}
    for name, sub in subs.items():
        assert sub.latencies is not None
        result[name] = {"received": sub.count, **stats([v for k, v in sub.latencies.items() if k >= warm])}
    ws, direct = subs["mqtt_ws"].latencies or {}, subs["direct_bridge"].latencies or {}
    result["added_by_mqtt_ws"] = stats([ws[k] - direct[k] for k in ws.keys() & direct.keys() if k >= warm])
    return result


# Memory: idle /mqtt connections -------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` and its descendants, KiB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


def idle_connection(port: int, session: str, origin: str) -> socket.socket:
    """A raw WebSocket to /mqtt, MQTT 5 CONNECT sent and CONNACK (success) read."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, BytesMessage, RejectConnection, Request

    from broker.mqtt import Connack, Connect, StreamDecoder, encode

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=f"127.0.0.1:{port}", target="/mqtt", subprotocols=["mqtt"],
                                 extra_headers=[(b"Origin", origin.encode()),
                                                (b"Cookie", f"sessionid={session}".encode())])))
    decoder = StreamDecoder(server_side=False, protocol_level=5)
    accepted = False
    while True:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("/mqtt closed an idle connection during its handshake")
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, RejectConnection):
                raise RuntimeError(f"/mqtt refused the handshake: {event.status_code}")
            if isinstance(event, AcceptConnection):
                accepted = True
                sock.sendall(ws.send(BytesMessage(data=encode(
                    Connect(protocol_level=5, client_id="", username=TENANT, keep_alive=300), 5))))
            elif isinstance(event, BytesMessage):
                for packet in decoder.feed(bytes(event.data)):
                    if isinstance(packet, Connack):
                        if packet.reason_code:
                            raise RuntimeError(f"/mqtt CONNACK {packet.reason_code:#x}")
                        assert accepted
                        return sock


def broker_connections(metrics_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        match = re.search(r"^roost_broker_connections (\S+)$", response.read().decode(), re.MULTILINE)
    return int(float(match.group(1))) if match else -1


def memory(web: subprocess.Popen[bytes], broker: subprocess.Popen[str], port: int, session: str, origin: str,
           count: int, metrics_port: int) -> dict[str, Any]:
    for sock in [idle_connection(port, session, origin) for _ in range(5)]:  # warm-up
        sock.close()
    time.sleep(1.0)
    before = {"web": rss_kib(web.pid), "broker": rss_kib(broker.pid)}
    started = time.perf_counter()
    socks = [idle_connection(port, session, origin) for _ in range(count)]
    open_seconds = time.perf_counter() - started
    time.sleep(1.0)
    after = {"web": rss_kib(web.pid), "broker": rss_kib(broker.pid)}
    relayed = broker_connections(metrics_port)  # each /mqtt connection is one on the bridge
    # Still open: nothing (no EOF) readable on any of them.
    alive = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            alive += sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    for sock in socks:
        sock.close()
    return {"connections": count, "still_open": alive, "broker_connections": relayed, "open_seconds": round(open_seconds, 1),
            "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_connection": {k: round((after[k] - before[k]) / count, 1) for k in before}}


# Main -----------------------------------------------------------------------------------------------


def run(options: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    env = dict(os.environ, ROOST_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="roost.settings",
               ROOST_ENV="development", PYTHONUNBUFFERED="1", ROOST_SECRET_KEY=secrets.token_urlsafe(48),
               ROOST_LOG_LEVEL="INFO", ROOST_BROKER_FLAP_MAX="0")  # the device reconnects for each phase
    env.pop("DATABASE_URL", None)
    bundle = prepare(env, data_dir)
    broker, ports = start_broker(env, data_dir)
    web, web_port = start_web(env, data_dir, ports)
    origin = f"http://127.0.0.1:{web_port}"
    session = login(origin)
    token = bridge_token(int(bundle["user_id"]))
    # One subscriber at a time: each path gets the broker and this process to itself.
    paths: dict[str, dict[str, Any]] = {"mqtt_ws": {"port": web_port, "session": session, "origin": origin},
                                        "direct_bridge": {"port": ports["bridge"], "token": token}}
    result: dict[str, Any] = {"throughput": {}, "throughput_paho": {}}
    # Memory first, while neither heap holds the buffers of a flood.
    result["memory"] = memory(web, broker, web_port, session, origin, options.idle, ports["metrics"])
    for name, how in paths.items():
        counter = Counter(**how).start()
        result["throughput"][name] = throughput(counter, ports["port"], bundle, options.messages, options.seconds)
        counter.stop()
        sub = Subscriber(**how).start()
        result["throughput_paho"][name] = throughput(sub, ports["port"], bundle, options.messages, options.seconds)
        sub.stop()
    subs = {name: Subscriber(**how).start() for name, how in paths.items()}
    result["latency"] = latency(subs, ports["port"], bundle, options.rate, options.latency_seconds)
    for sub in subs.values():
        sub.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000, help="Messages of the throughput run.")
    parser.add_argument("--seconds", type=float, default=20.0, help="Time bound of one throughput run.")
    parser.add_argument("--rate", type=int, default=1_000, help="msg/s of the latency run.")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=500, help="Idle /mqtt connections of the memory run.")
    options = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * options.idle + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # inherited by broker and web
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()[0]  # a p99 over 10 s is one stall: other load shows there
    with tempfile.TemporaryDirectory(prefix="roost-bench-mqtt-ws-") as tmp:
        try:
            result = run(options, Path(tmp))
        finally:
            stop_all()
    result.update(payload_bytes=PAYLOAD_BYTES, database="sqlite", python=platform.python_version(),
                  cpus=os.cpu_count(), load_average_1min={"before": load_before, "after": os.getloadavg()[0]},
                  when=datetime.now(UTC).isoformat(timespec="seconds"),
                  direct_path="the same receivers on the broker's bridge listener (signed principal)")
    print(f"{'path':<15}{'msg/s':>9}{'received/sent':>17}{'paho msg/s':>12}{'received/sent':>17}"
          f"{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}")
    for name in ("mqtt_ws", "direct_bridge"):
        t, p, lat = result["throughput"][name], result["throughput_paho"][name], result["latency"][name]
        print(f"{name:<15}{t['msg_per_s']:>9,}{t['received']:>10,}/{t['sent']:<6,}{p['msg_per_s']:>12,}"
              f"{p['received']:>10,}/{p['sent']:<6,}{lat['p50_ms']:>8}{lat['p99_ms']:>8}{lat['max_ms']:>8}")
    mem = result["memory"]
    added = result["latency"]["added_by_mqtt_ws"]
    print(f"added by /mqtt per message at {options.rate} msg/s: p50 {added['p50_ms']} ms, "
          f"p99 {added['p99_ms']} ms, max {added['max_ms']} ms")
    print(f"{mem['connections']} idle /mqtt connections ({mem['still_open']} still open, "
          f"{mem['broker_connections']} on the broker): "
          f"web {mem['kib_per_connection']['web']} KiB, broker {mem['kib_per_connection']['broker']} KiB "
          "per connection")
    out = REPO / "bench" / "results" / "mqtt_ws.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
