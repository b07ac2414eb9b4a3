from __future__ import annotations
import socket, threading, time
import pytest
from broker.mqtt import Connect, Publish, Subscribe, Subscription, encode, StreamDecoder, Suback
from broker.integration.bridge import BridgePrincipal, sign_principal
from tests.broker.integration.wss_client import WsMqtt
from tests.broker.integration.platform_harness import tls_socket, PlatformWeb
from wsproto.events import BytesMessage

class BigWeb(PlatformWeb):
    def env(self):
        return dict(super().env(), ROOST_MQTT_WS_MAX_CONNECTIONS="2000")

@pytest.fixture(scope="module")
def web(platform, broker):
    w = BigWeb(platform, broker)
    yield w.start()
    w.stop()

def publisher(broker, bundle, n, rate):
    s = tls_socket(broker.port, bundle.ca, bundle.cert, bundle.key)
    s.sendall(encode(Connect(protocol_level=5, client_id=bundle.name), 5))
    s.recv(100)
    t0 = time.monotonic()
    for i in range(n):
        s.sendall(encode(Publish(f"devices/{bundle.name}/t", b"%030d" % time.perf_counter_ns() + b"p" * 34, qos=0), 5))
        delay = t0 + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    time.sleep(1)
    s.close()

def lat(recv_chunks, n):
    dec = StreamDecoder(server_side=False, protocol_level=5); dec.connected = True
    out = []
    for chunk in recv_chunks():
        now = time.perf_counter_ns()
        for p in dec.feed(chunk):
            out.append((now - int(p.payload[:30])) / 1e6)
        if len(out) >= n:
            break
    out.sort()
    return out[len(out) // 2], out[int(len(out) * 0.99)], len(out)

def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

def test_latency_and_memory(platform, broker, web):
    platform.call("tenant_create", slug="benchy")
    platform.call("user_create", username="benchy", password="p-123456-x", tenants={"benchy": "viewer"})
    s = platform.call("session_create", username="benchy")
    bundle = platform.device("benchy", "bench")
    N = 3000
    c = WsMqtt(web, session=s)
    assert c.connect("benchy", client_id="b").reason_code == 0
    c.frame(Subscribe(1, [Subscription("devices/#", 0)])); assert isinstance(c.next(), Suback)
    def ws_chunks():
        c.sock.settimeout(10)
        while True:
            data = c.sock.recv(65536)
            if not data: return
            c.ws.receive_data(data)
            for ev in c.ws.events():
                if isinstance(ev, BytesMessage):
                    yield bytes(ev.data)
    th = threading.Thread(target=publisher, args=(broker, bundle, N, 1000)); th.start()
    p50, p99, k = lat(ws_chunks, N); th.join()
    import tracemalloc
    print(f"\n/mqtt @1000/s: p50 {p50:.2f} ms p99 {p99:.2f} ms ({k})")
    token = sign_principal(BridgePrincipal("benchy", 1, "benchy", "viewer"))
    d = socket.create_connection(("127.0.0.1", broker.bridge_port))
    d.sendall(encode(Connect(protocol_level=5, client_id="direct", username="x", password=token.encode()), 5))
    d.sendall(encode(Subscribe(1, [Subscription("devices/#", 0)]), 5))
    time.sleep(0.5); d.recv(1000)
    def tcp_chunks():
        d.settimeout(10)
        while True:
            data = d.recv(65536)
            if not data: return
            yield data
    th = threading.Thread(target=publisher, args=(broker, bundle, N, 1000)); th.start()
    p50, p99, k = lat(tcp_chunks, N); th.join()
    print(f"direct bridge @1000/s: p50 {p50:.2f} ms p99 {p99:.2f} ms ({k})")
    # memory of idle connections
    time.sleep(1)
    w0, b0 = rss(web.proc.pid), rss(broker.proc.pid)
    idle = []
    M = 500
    for i in range(M):
        x = WsMqtt(web, session=s)
        assert x.connect("benchy", client_id=f"idle-{i}", keep_alive=0).reason_code == 0
        idle.append(x)
    time.sleep(5)
    w1, b1 = rss(web.proc.pid), rss(broker.proc.pid)
    print(f"{M} idle: web +{(w1-w0)/M:.1f} KiB/conn, broker +{(b1-b0)/M:.1f} KiB/conn")
    for x in idle: x.close()
    time.sleep(3)
    w0 = rss(web.proc.pid)
    idle = [WsMqtt(web, session=s) for i in range(M)]
    time.sleep(2)
    w1 = rss(web.proc.pid)
    print(f"{M} handshakes only: web +{(w1-w0)/M:.1f} KiB/conn")
    for x in idle: x.close()
