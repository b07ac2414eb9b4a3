"""A subscriber that stops reading slows no one: publishers and other subscribers keep their
rate, the broker's memory stays bounded and the drops are counted (issue 14).

Everything here is a real `python -m broker` process and real sockets. The stuck client is
a raw socket that connects, subscribes and never calls recv again.
"""

from __future__ import annotations

import multiprocessing
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.mqtt import Connect, Pingreq, Publish, Subscribe, Subscription, encode

TCP_ESTABLISHED = 1
PAYLOAD = b"x" * 1024
# The publishers and the healthy subscriber speak 3.1.1: what it receives is byte for byte
# what was published, so counting bytes counts messages.
PACKET = encode(Publish("flood", PAYLOAD), 4)
BATCH = PACKET * 32
PUBLISHERS = 50  # issue 14: one subscriber that never reads beside 50 publishers at full rate
WARMUP_SECONDS = 1.0  # kernel buffers fill up first; rates are taken after this
RUN_SECONDS = 3.0
# 50 sockets at full rate keep the broker's core busy: one pass of its event loop over them
# takes a while, and what sits in their socket buffers is worked off after they close. The
# timing bounds below only tell "slow" from "stopped"; a paused publisher or subscriber would
# never get an answer at all.
ANSWER_WITHIN = 10.0


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclass
class Run:
    """What one bounded flood measured (counts after the warm-up, unless said otherwise)."""

    received: int = 0  # messages the healthy subscriber got
    published: list[int] = field(default_factory=list)  # messages each publisher got out, in all
    steady_published: int = 0  # messages all publishers got out after the warm-up
    longest_blocked: float = 0.0  # longest time one publisher's socket took nothing
    probe_latency: float = 0.0  # slowest PINGRESP or PUBACK seen by the probing publisher
    unanswered: int = 0
    gaps: float = 0.0  # longest time the healthy subscriber received nothing
    seconds: float = RUN_SECONDS  # measured, after the warm-up
    elapsed: float = 0.0  # the whole flood

    @property
    def rate(self) -> float:
        return self.received / self.seconds

    @property
    def share(self) -> float:
        """What reached the healthy subscriber, of what the publishers got out."""
        return self.received / max(self.steady_published, 1)


def stuck_subscriber(raw_factory, port: int, client_id: str):
    stuck = raw_factory(port)
    # A small receive window: the broker's side backs up after a few KiB, as with a
    # dashboard whose process froze.
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert stuck.connect(client_id).reason_code == 0
    stuck.send(Subscribe(1, [Subscription("flood", 1)]))
    assert stuck.receive().reason_codes == [1]
    return stuck  # never read again


def read_all(sock: socket.socket, stop: Any, received: Any, longest_gap: Any) -> None:
    """Read everything from `sock` until `stop`; count the bytes and the longest silence."""
    sock.settimeout(0.2)
    last = time.monotonic()
    while not stop.is_set():
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except ConnectionResetError:
            data = b""
        if not data:
            break  # disconnected: what it got so far is its count
        now = time.monotonic()
        received.value += len(data)
        longest_gap.value = max(longest_gap.value, now - last)
        last = now
    longest_gap.value = max(longest_gap.value, time.monotonic() - last)


def flood(raw_factory, port: int, tag: str, until: Callable[[], bool] | None = None) -> Run:
    """PUBLISHERS raw publishers at full rate for WARMUP_SECONDS + RUN_SECONDS (or, with
    `until`, until it holds, within 20 s), a healthy subscriber reading everything, and a
    probing publisher that pings and publishes QoS 1 as it goes.

    One thread writes for every publisher (non-blocking, whatever each socket takes), so the
    test's own threads do not fight over the GIL and a publisher's socket that takes nothing
    for long is the broker not reading it, not this process not writing."""
    run = Run(published=[0] * PUBLISHERS)
    healthy = raw_factory(port, level=4)
    assert healthy.connect(f"healthy-{tag}").reason_code == 0
    healthy.send(Subscribe(1, [Subscription("flood", 0)]))
    assert healthy.receive().reason_codes == [0]
    publishers = []
    for i in range(PUBLISHERS):
        publisher = raw_factory(port, level=4)
        assert publisher.connect(f"pub-{tag}-{i}").reason_code == 0
        publishers.append(publisher)
    probe = raw_factory(port)
    assert probe.connect(f"probe-{tag}").reason_code == 0
    stop = threading.Event()
    # The healthy subscriber reads in a process of its own: it competes with the publishing
    # thread for a core, not for this interpreter's lock.
    mp = multiprocessing.get_context("fork")
    received_bytes, longest_gap = mp.Value("q", 0), mp.Value("d", 0.0)
    stop_reading = mp.Event()
    reader = mp.Process(target=read_all, args=(healthy.sock, stop_reading, received_bytes, longest_gap),
                        daemon=True)

    sent_bytes = [0] * PUBLISHERS

    def publish() -> None:
        selector = selectors.DefaultSelector()
        pending = {}
        progress = {}
        for i, publisher in enumerate(publishers):
            # Little queued on this side, so the broker's backlog is what it has not read yet.
            publisher.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            publisher.sock.setblocking(False)
            selector.register(publisher.sock, selectors.EVENT_WRITE, i)
            pending[i] = memoryview(BATCH)
            progress[i] = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            for key, _ in selector.select(0.2):
                i = key.data
                try:
                    n = key.fileobj.send(pending[i])  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                except OSError:
                    selector.unregister(key.fileobj)
                    continue
                sent_bytes[i] += n
                progress[i] = now
                pending[i] = pending[i][n:] if n < len(pending[i]) else memoryview(BATCH)
            for i, at in progress.items():
                run.longest_blocked = max(run.longest_blocked, now - at)
        selector.close()

    reader.start()
    threads = [threading.Thread(target=publish, daemon=True)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    steady_at = started + WARMUP_SECONDS
    deadline = steady_at + (RUN_SECONDS if until is None else 20.0)
    base: tuple[int, int] | None = None
    packet_id = 0
    while time.monotonic() < deadline and not (until is not None and until()):
        if base is None and time.monotonic() >= steady_at:
            base = (received_bytes.value, sum(sent_bytes))
            steady_at = time.monotonic()
        # The probe's own socket is read, so its answers come unless the broker stops
        # reading its publishers or falls behind on everything.
        packet_id += 1
        sent = time.monotonic()
        probe.send(Pingreq())
        probe.send(Publish("flood", b"probe", qos=1, packet_id=packet_id))
        answers = 0
        while answers < 2:
            packet = probe.receive(timeout=ANSWER_WITHIN)
            if packet is None:
                run.unanswered += 2 - answers
                break
            answers += 1
        run.probe_latency = max(run.probe_latency, time.monotonic() - sent)
        time.sleep(0.1)
    ended = time.monotonic()
    received, published = received_bytes.value, sum(sent_bytes)
    stop.set()
    stop_reading.set()
    for thread in threads:
        thread.join(5)
    reader.join(5)
    run.gaps = longest_gap.value
    base = base or (0, 0)
    run.seconds = max(ended - steady_at, 1e-3)
    run.elapsed = ended - started
    run.received = (received - base[0]) // len(PACKET)
    run.steady_published = (published - base[1]) // len(PACKET)
    run.published = [count // len(PACKET) for count in sent_bytes]
    for client in (healthy, probe, *publishers):
        client.close()
    settle(raw_factory, port)
    return run


def settle(raw_factory, port: int) -> None:
    """Wait until the broker has worked off the flood's backlog: a new client gets its CONNACK."""
    client = raw_factory(port)
    client.sock.settimeout(30)
    client.send(Connect(client_id="settle", protocol_level=5))
    assert client.receive(timeout=30) is not None, "the broker did not answer within 30 s of a flood"
    client.close()


def dropped(broker_port: int, client_factory, timeout: float = 5.0, reason: str = "") -> int:
    """$SYS/broker/messages/dropped[/REASON], once it is refreshed (--sys-interval 1)."""
    watcher = client_factory(broker_port).connect()
    watcher.subscribe("$SYS/broker/messages/dropped" + (f"/{reason}" if reason else ""))
    value = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in watcher.collect(0.5):
            value = int(message.payload)
        if value:
            break
    return value


def test_a_subscriber_that_never_reads_slows_neither_publishers_nor_other_subscribers(
    start_broker, raw_factory, client_factory
):
    broker = start_broker()
    assert broker.proc is not None
    baseline = flood(raw_factory, broker.port, "alone")
    assert baseline.received > 0 and all(count > 0 for count in baseline.published)

    rss_before = rss_bytes(broker.proc.pid)
    stuck = stuck_subscriber(raw_factory, broker.port, "stuck")
    run = flood(raw_factory, broker.port, "stuck")
    rss_after = rss_bytes(broker.proc.pid)

    ratio = run.rate / baseline.rate
    # The share of what was published that reached the healthy subscriber: the same measure,
    # but blind to how much CPU the other tenants of a shared machine left this test.
    share = run.share / baseline.share
    print(f"\nhealthy subscriber: {baseline.rate:,.0f} msg/s alone, {run.rate:,.0f} msg/s beside "
          f"a stuck subscriber (ratio {ratio:.2f}, share of published {baseline.share:.2f} vs "
          f"{run.share:.2f}: {share:.2f}); {PUBLISHERS} publishers sent {sum(baseline.published):,} vs "
          f"{sum(run.published):,}, fewest {min(baseline.published):,} vs {min(run.published):,}, "
          f"longest blocked {baseline.longest_blocked:.2f} s vs {run.longest_blocked:.2f} s; "
          f"probe worst latency {baseline.probe_latency * 1000:.0f} ms vs "
          f"{run.probe_latency * 1000:.0f} ms; healthy longest silence {baseline.gaps:.2f} s vs {run.gaps:.2f} s; broker RSS +{(rss_after - rss_before) >> 20} MiB")
    # The stuck one is still connected and backed up: the flood really went past it.
    assert tcp_state(stuck.sock) == TCP_ESTABLISHED
    # Every publisher keeps being read: none waits for the stuck subscriber.
    assert all(count > 0 for count in run.published)
    assert run.longest_blocked < ANSWER_WITHIN, f"a publisher's socket took nothing for {run.longest_blocked:.1f}s"
    assert run.unanswered == 0, "a PINGREQ or QoS 1 PUBLISH went unanswered"
    assert run.probe_latency < ANSWER_WITHIN
    assert run.gaps < ANSWER_WITHIN / 2, f"the healthy subscriber stalled for {run.gaps:.1f}s"
    # The publishers keep their rate: the broker goes on reading them as fast as before.
    assert run.steady_published / run.seconds >= 0.5 * baseline.steady_published / baseline.seconds
    # 50 unpaced publishers overload the broker's core, and it drops QoS 0 for every
    # subscriber that falls behind, the healthy one too: what matters here is that it keeps
    # receiving (no long silence above, a share of what was published here). On the loaded
    # 2-core machine its share flips between about 0.6 and 0.04 from run to run, with or
    # without the stuck subscriber (once behind, it stays behind), so no ratio is asserted;
    # with paced publishers (`make bench`, slow-stuck-qos0) the rates are compared.
    assert run.received > 0 and run.share > 0
    # Memory: the stuck subscriber's backlog is bounded by --max-write-buffer (4 MiB) and the
    # queue limits, whatever was published past it.
    assert rss_after - rss_before < 100 << 20
    assert dropped(broker.port, client_factory) > 0
    assert dropped(broker.port, client_factory, reason="slow_client") > 0  # QoS 0 to the stuck one
    assert broker.alive


def test_with_slow_client_disconnect_the_stuck_subscriber_is_cut_off_and_the_others_carry_on(
    start_broker, raw_factory, client_factory
):
    broker = start_broker("--slow-client", "disconnect", "--max-write-buffer", "1048576")
    stuck = stuck_subscriber(raw_factory, broker.port, "stuck")
    run = flood(raw_factory, broker.port, "cut",
                until=lambda: tcp_state(stuck.sock) != TCP_ESTABLISHED)
    print(f"\nthe stuck subscriber was cut off after {run.elapsed:.1f}s of flood")
    # Overflowing its 1 MiB buffer cost it the connection (reset: the 0x97 DISCONNECT
    # could not get past what it had not read), long before the 30 s stall timeout.
    assert tcp_state(stuck.sock) != TCP_ESTABLISHED
    assert run.unanswered == 0 and run.longest_blocked < ANSWER_WITHIN
    assert run.received > 0 and run.gaps < ANSWER_WITHIN / 2
    assert broker.alive

