"""A subscriber that stops reading loses its connection; its publishers never wait for it."""

from __future__ import annotations

import socket
import threading
import time

from broker.mqtt import Publish, Subscribe, Subscription, encode

TCP_ESTABLISHED = 1


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def test_a_stuck_subscriber_is_disconnected_while_others_keep_receiving(start_broker, raw_factory, client_factory):
    broker = start_broker("--write-stall-timeout", "1", "--max-write-buffer", "65536")
    stuck = raw_factory(broker.port)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert stuck.connect("stuck").reason_code == 0
    stuck.send(Subscribe(1, [Subscription("flood", 0)]))
    assert stuck.receive().reason_codes == [0]
    healthy = client_factory(broker.port).connect()
    healthy.subscribe("flood", 0)

    publisher = raw_factory(broker.port, level=4)
    assert publisher.connect("flooder").reason_code == 0
    packet = encode(Publish("flood", b"x" * 1024), 4) * 16
    stop = threading.Event()

    def flood() -> None:
        # Paced so that a Python subscriber can keep up: only the stuck one falls behind.
        publisher.sock.settimeout(10)
        while not stop.is_set():
            publisher.sock.sendall(packet)
            time.sleep(0.003)

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        # Watch the kernel's TCP state rather than reading, which would unstick it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and tcp_state(stuck.sock) == TCP_ESTABLISHED:
            time.sleep(0.1)
        assert tcp_state(stuck.sock) != TCP_ESTABLISHED, "the stuck subscriber was kept"
        before = healthy.messages.qsize()
        time.sleep(0.5)
        assert healthy.messages.qsize() > before, "delivery to others stopped"
        assert not healthy.disconnected.is_set()
    finally:
        stop.set()
        thread.join(5)
    assert broker.alive


def test_a_new_subscriber_gets_every_retained_message_however_many_its_buffer_cannot_hold(
        start_broker, raw_factory):
    # 4,000 retained messages of 1 KiB: four times the write buffer the broker allows a client.
    broker = start_broker("--max-write-buffer", "1048576")
    publisher = raw_factory(broker.port, level=4)
    assert publisher.connect("keeper").reason_code == 0
    count = 4000
    publisher.send(b"".join(encode(Publish(f"kept/{i}", b"%06d" % i + b"x" * 1018, retain=True), 4)
                            for i in range(count)))
    publisher.send(Subscribe(1, [Subscription("kept/done", 0)]))  # all stored once this is answered
    assert publisher.receive(timeout=30).reason_codes == [0]

    subscriber = raw_factory(broker.port, level=4)
    subscriber.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    assert subscriber.connect("late").reason_code == 0
    subscriber.send(Subscribe(2, [Subscription("kept/#", 0)]))
    assert subscriber.receive().reason_codes == [0]
    got = set()
    while len(got) < count:
        packet = subscriber.receive(timeout=10)
        assert packet is not None, f"closed after {len(got)}"
        assert packet.retain
        got.add(bytes(packet.payload[:6]))
    assert got == {b"%06d" % i for i in range(count)}
