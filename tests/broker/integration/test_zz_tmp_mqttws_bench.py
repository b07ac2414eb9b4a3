from __future__ import annotations
import socket, ssl, threading, time, os
from broker.mqtt import Connect, Publish, Subscribe, Subscription, encode, Connack, Suback
from broker.integration.bridge import BridgePrincipal, sign_principal
from frontend.mqtt.walker import PacketWalker
from tests.broker.integration.wss_client import WsMqtt
from tests.broker.integration.platform_harness import tls_socket
from wsproto.events import BytesMessage

N = 100_000

def publisher(broker, bundle, n, rate=None):
    s = tls_socket(broker.port, bundle.ca, bundle.cert, bundle.key)
    s.sendall(encode(Connect(protocol_level=5, client_id=bundle.name), 5))
    s.recv(100)
    pkt = encode(Publish(f"devices/{bundle.name}/t", b"p" * 64, qos=0), 5)
    if rate is None:
        batch = pkt * 1000
        for _ in range(n // 1000):
            s.sendall(batch)
    else:
        t0 = time.monotonic()
        for i in range(n):
            s.sendall(encode(Publish(f"devices/{bundle.name}/t", b"%063d" % time.perf_counter_ns() + b" ", qos=0), 5))
            delay = t0 + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    time.sleep(2)
    s.close()

def count_ws(client, n, timeout=60):
    walker = PacketWalker()
    got = 0
    t0 = None
    deadline = time.monotonic() + timeout
    client.sock.settimeout(5)
    while got < n and time.monotonic() < deadline:
        data = client.sock.recv(262144)
        if not data:
            break
        client.ws.receive_data(data)
        for ev in client.ws.events():
            if isinstance(ev, BytesMessage):
                if t0 is None:
                    t0 = time.monotonic()
                got += walker.feed(ev.data)
    return got, time.monotonic() - (t0 or time.monotonic())

def count_tcp(sock, n, timeout=60):
    walker = PacketWalker(); got = 0; t0 = None
    deadline = time.monotonic() + timeout
    sock.settimeout(5)
    while got < n and time.monotonic() < deadline:
        data = sock.recv(262144)
        if not data: break
        if t0 is None: t0 = time.monotonic()
        got += walker.feed(data)
    return got, time.monotonic() - (t0 or time.monotonic())

def test_bench(platform, broker, web):
    platform.call("tenant_create", slug="benchx")
    platform.call("user_create", username="benchx", password="p-123456-x", tenants={"benchx": "viewer"})
    s = platform.call("session_create", username="benchx")
    bundle = platform.device("benchx", "bench")
    # via /mqtt
    c = WsMqtt(web, session=s)
    assert c.connect("benchx", client_id="b").reason_code == 0
    c.frame(Subscribe(1, [Subscription("devices/#", 0)]))
    assert isinstance(c.next(), Suback)
    th = threading.Thread(target=publisher, args=(broker, bundle, N)); th.start()
    got, dt = count_ws(c, N)
    th.join()
    print(f"\n/mqtt: {got} msgs in {dt:.2f}s = {got/dt:.0f} msg/s")
    # direct bridge
    token = sign_principal(BridgePrincipal("benchx", 1, "benchx", "viewer"))
    d = socket.create_connection(("127.0.0.1", broker.bridge_port))
    d.sendall(encode(Connect(protocol_level=5, client_id="direct", username="x", password=token.encode()), 5))
    d.sendall(encode(Subscribe(1, [Subscription("devices/#", 0)]), 5))
    time.sleep(0.5); d.recv(1000)
    th = threading.Thread(target=publisher, args=(broker, bundle, N)); th.start()
    got, dt = count_tcp(d, N)
    th.join()
    print(f"direct bridge: {got} msgs in {dt:.2f}s = {got/dt:.0f} msg/s")
    import psutil
