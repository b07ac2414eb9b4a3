"""The journal: acknowledgements wait for the disk, replay, torn tails and compaction."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from typing import Any

from broker.engine.journal import Journal, frame, read_records
from broker.engine.store import SNAPSHOT
from broker.mqtt import (
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
)
from tests.broker.engine.engine_pairs import FakeClock, Peer, make_broker

SESSION = Properties(session_expiry_interval=600)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


async def settle(journal: Journal) -> None:
    """Until the flusher has put everything appended on disk (and released what waited)."""
    for _ in range(2000):
        if journal.durable_seq == journal.seq:
            await asyncio.sleep(0)
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the journal did not flush")


async def durable_subscriber(broker, journal, client_id="s", qos=1) -> Peer:
    peer = Peer(broker)
    from broker.mqtt import Connect

    peer.send(Connect(protocol_level=5, client_id=client_id, clean_start=False, properties=SESSION))
    await settle(journal)
    peer.send(Subscribe(1, [Subscription("x/#", qos)]))
    await settle(journal)
    return peer


async def plain_client(broker, journal, client_id="p") -> Peer:
    from broker.mqtt import Connect

    peer = Peer(broker)
    peer.send(Connect(protocol_level=5, client_id=client_id))
    await settle(journal)
    assert peer.received()[0].reason_code == 0
    return peer


def acks(peer: Peer, kind: type) -> list[int]:
    return [p.packet_id for p in peer.received() if isinstance(p, kind)]


def test_a_puback_waits_until_the_message_is_on_disk_for_a_persistent_subscriber(tmp_path):
    async def scenario() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(store=journal)
        sub = await durable_subscriber(broker, journal)
        sub.lose()
        pub = await plain_client(broker, journal)
        pub.send(Publish("x/1", b"m", 1, packet_id=9))
        assert acks(pub, Puback) == []
        await settle(journal)
        assert acks(pub, Puback) == [9]
        broker.stop()

    run(scenario)


def test_a_puback_for_a_message_no_persistent_session_wants_is_sent_at_once(tmp_path):
    async def scenario() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(store=journal)
        pub = await plain_client(broker, journal)
        before = journal.seq
        pub.send(Publish("nobody/listens", b"m", 1, packet_id=3))
        assert acks(pub, Puback) == [3]
        assert journal.seq == before
        broker.stop()

    run(scenario)


def test_acknowledgements_keep_their_order_when_only_the_first_waits(tmp_path):
    async def scenario() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(store=journal)
        sub = await durable_subscriber(broker, journal)
        sub.lose()
        pub = await plain_client(broker, journal)
        pub.send(Publish("x/1", b"durable", 1, packet_id=1))
        pub.send(Publish("elsewhere", b"not", 1, packet_id=2))
        assert acks(pub, Puback) == []
        await settle(journal)
        assert acks(pub, Puback) == [1, 2]
        broker.stop()

    run(scenario)


def test_connack_and_suback_of_a_persistent_session_wait_for_the_disk(tmp_path):
    async def scenario() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(store=journal)
        from broker.mqtt import Connack, Connect

        peer = Peer(broker)
        peer.send(Connect(protocol_level=5, client_id="s", clean_start=False, properties=SESSION))
        assert peer.received() == []
        await settle(journal)
        assert isinstance(peer.received()[0], Connack)
        peer.send(Subscribe(4, [Subscription("x/#", 1)]))
        assert peer.received() == []
        await settle(journal)
        assert isinstance(peer.received()[0], Suback)
        broker.stop()

    run(scenario)


def restored_inflight(tmp_path, clock: FakeClock, client_id: str = "s") -> list[Any]:
    """The in-flight deliveries a restart on the same journal brings back for a session;
    the broker is stopped again."""

    async def restart() -> list[Any]:
        broker, _ = make_broker(clock=clock, store=Journal(str(tmp_path)))
        inflight = list((broker.sessions[("", client_id)].inflight or {}).values())
        broker.stop()
        return inflight

    return run(restart)


def crash(broker) -> None:
    """Stop the timers and flusher without the shutdown snapshot: what a kill -9 leaves."""
    broker._stopped = True
    for timer in broker._timers.values():
        timer.cancel()
    task = broker.journal._task
    if task is not None:
        task.cancel()


def test_a_restart_after_a_crash_delivers_every_acknowledged_message_qos2_exactly_once(tmp_path):
    async def first() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(store=journal, max_inflight=100)  # 50 unreleased QoS 2
        sub = await durable_subscriber(broker, journal, qos=2)
        sub.lose()
        pub = await plain_client(broker, journal)
        for pid in range(1, 51):
            pub.send(Publish("x/1", b"%d" % pid, 2, packet_id=pid))
        await settle(journal)
        assert acks(pub, Pubrec) == list(range(1, 51))
        for pid in range(1, 51):
            pub.send(Pubrel(pid))
        await settle(journal)
        assert acks(pub, Pubcomp) == list(range(1, 51))
        crash(broker)
        return clock

    clock = run(first)

    async def second() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(clock=clock, store=journal, max_inflight=100)
        from broker.mqtt import Connect

        peer = Peer(broker)
        peer.send(Connect(protocol_level=5, client_id="s", clean_start=False, properties=SESSION,
                          ))
        await settle(journal)
        packets = peer.received()
        assert packets[0].session_present
        got = [p.payload for p in packets if isinstance(p, Publish)]
        assert got == [b"%d" % pid for pid in range(1, 51)]
        broker.stop()

    run(second)


def test_a_qos2_packet_id_received_before_a_crash_is_not_routed_again_when_resent(tmp_path):
    async def first() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(store=journal)
        sub = await durable_subscriber(broker, journal, qos=2)
        sub.lose()
        from broker.mqtt import Connect

        pub = Peer(broker)
        pub.send(Connect(protocol_level=5, client_id="p", clean_start=False, properties=SESSION))
        await settle(journal)
        pub.received()
        pub.send(Publish("x/1", b"once", 2, packet_id=7))
        await settle(journal)
        assert acks(pub, Pubrec) == [7]
        crash(broker)
        return clock

    clock = run(first)

    async def second() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(clock=clock, store=journal)
        from broker.mqtt import Connect

        pub = Peer(broker)
        pub.send(Connect(protocol_level=5, client_id="p", clean_start=False, properties=SESSION))
        await settle(journal)
        pub.received()
        pub.send(Publish("x/1", b"once", 2, packet_id=7, dup=True))
        await settle(journal)
        assert acks(pub, Pubrec) == [7]
        session = broker.sessions[("", "s")]
        assert [o.message.payload for o in session.queue] == [b"once"]
        broker.stop()

    run(second)


def log_path(tmp_path, generation: int = 0) -> str:
    return os.path.join(tmp_path, f"roost-broker.{generation}.log")


def write_journal(tmp_path, records: list[list[Any]]) -> None:
    with open(log_path(tmp_path), "wb") as f:
        for record in records:
            f.write(frame(record))


SESSION_RECORD = ["S", "", "s", "", {}, 5, 600, 1.0, None]


def test_a_torn_final_record_is_ignored_and_cut_off(tmp_path):
    write_journal(tmp_path, [SESSION_RECORD, ["+", "", "s", "a/#", 1, False, False, 0, None, False]])
    good = os.path.getsize(log_path(tmp_path))
    with open(log_path(tmp_path), "ab") as f:
        f.write(frame(["+", "", "s", "b/#", 1, False, False, 0, None, False])[:-5])
    snap = Journal(str(tmp_path)).load()
    assert [s.topic_filter for s in snap.sessions[0].subscriptions] == ["a/#"]
    assert os.path.getsize(log_path(tmp_path)) == good


def test_garbage_after_the_last_record_is_ignored_and_cut_off(tmp_path):
    write_journal(tmp_path, [SESSION_RECORD])
    good = os.path.getsize(log_path(tmp_path))
    with open(log_path(tmp_path), "ab") as f:
        f.write(os.urandom(100))
    snap = Journal(str(tmp_path)).load()
    assert [s.client_id for s in snap.sessions] == ["s"]
    assert os.path.getsize(log_path(tmp_path)) == good


def test_the_log_is_preallocated_and_its_zeros_are_neither_records_nor_a_torn_tail(tmp_path, monkeypatch, caplog):
    import broker.engine.journal as journal_module

    monkeypatch.setattr(journal_module, "PREALLOCATE", 4096)  # grown many times below

    async def first() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(store=journal)
        await durable_subscriber(broker, journal)
        pub = await plain_client(broker, journal)
        for pid in range(1, 201):
            pub.send(Publish("x/1", b"%d" % pid + b"." * 100, 1, packet_id=pid))
            if pid % 20 == 0:
                await settle(journal)
        await settle(journal)
        assert acks(pub, Puback) == list(range(1, 201))
        assert os.path.getsize(log_path(tmp_path)) > journal.log_bytes  # zeros ahead
        crash(broker)
        return clock

    clock = run(first)
    size = os.path.getsize(log_path(tmp_path))

    async def second() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(clock=clock, store=journal)
        session = broker.sessions[("", "s")]
        got = [o.message.payload.split(b".")[0] for o in (*session.inflight.values(), *session.queue)]
        assert got == [b"%d" % pid for pid in range(1, 201)]
        broker.stop()

    caplog.set_level("WARNING", logger="broker.engine.journal")
    run(second)
    assert not [r for r in caplog.records if "torn" in r.getMessage()]
    assert size > 8 * 4096  # grown step by step


def test_a_torn_frame_in_the_preallocated_part_is_cut_off(tmp_path):
    write_journal(tmp_path, [SESSION_RECORD])
    good = os.path.getsize(log_path(tmp_path))
    with open(log_path(tmp_path), "ab") as f:
        f.write(frame(["E", "", "s"])[:-3] + bytes(10000))  # torn, then preallocated zeros
    snap = Journal(str(tmp_path)).load()
    assert [s.client_id for s in snap.sessions] == ["s"]
    assert os.path.getsize(log_path(tmp_path)) == good


def test_a_record_whose_checksum_does_not_match_ends_the_replay(tmp_path):
    data = frame(SESSION_RECORD) + frame(["E", "", "s"])
    corrupt = bytearray(data)
    corrupt[-2] ^= 0xFF
    records, good = read_records(bytes(corrupt))
    assert records == [SESSION_RECORD]
    assert good == len(frame(SESSION_RECORD))


def test_one_group_commit_is_one_frame_of_records_a_line_each(tmp_path):
    async def scenario() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(store=journal)
        await durable_subscriber(broker, journal)
        pub = await plain_client(broker, journal)
        for pid in range(1, 6):
            pub.send(Publish("x/1", b"%d" % pid, 1, packet_id=pid))
        batches = journal.batches
        await settle(journal)
        assert journal.batches == batches + 1 and acks(pub, Puback) == [1, 2, 3, 4, 5]
        crash(broker)

    run(scenario)
    with open(log_path(tmp_path), "rb") as f:
        data = f.read()
    records, good = read_records(data)
    assert [r[0] for r in records].count("D") == 5
    assert data.count(0, good) == len(data) - good  # then only the preallocated zeros


def test_a_failed_write_leaves_no_partial_frame_before_its_retry(tmp_path, monkeypatch):
    import broker.engine.journal as journal_module

    real_write = os.pwrite
    failures = []

    def half_then_fail(fd: int, data: Any, offset: int) -> int:
        if not failures and bytes(data[:8]) != bytes(8):  # a frame, not the zeros ahead of it
            failures.append(real_write(fd, bytes(data[: len(data) // 2]), offset))
            raise OSError(28, "No space left on device")
        return real_write(fd, data, offset)

    async def first() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(store=journal)
        await durable_subscriber(broker, journal)
        pub = await plain_client(broker, journal)
        monkeypatch.setattr(journal_module.os, "pwrite", half_then_fail)
        pub.send(Publish("x/1", b"kept", 1, packet_id=1))
        for _ in range(3000):  # the retry comes a second after the failure
            await asyncio.sleep(0.001)
            if acks(pub, Puback) == [1]:
                break
        else:
            raise AssertionError("never acknowledged")
        assert failures
        crash(broker)
        return clock

    clock = run(first)
    monkeypatch.setattr(journal_module.os, "pwrite", real_write)
    assert [o.message.payload for o in restored_inflight(tmp_path, clock)] == [b"kept"]


def test_compaction_moves_to_a_new_snapshot_and_log_and_loses_nothing(tmp_path):
    async def first() -> FakeClock:
        journal = Journal(str(tmp_path), compact_bytes=2000)
        broker, clock = make_broker(store=journal)
        sub = await durable_subscriber(broker, journal)
        sub.lose()
        pub = await plain_client(broker, journal)
        for pid in range(1, 101):
            pub.send(Publish("x/1", b"%d" % pid, 1, packet_id=pid))
            if pid % 10 == 0:
                await settle(journal)
        await settle(journal)
        assert journal.generation > 0
        assert not os.path.exists(log_path(tmp_path, 0))
        assert os.path.exists(os.path.join(tmp_path, SNAPSHOT))
        crash(broker)
        return clock

    clock = run(first)

    async def second() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(clock=clock, store=journal, max_queued_messages=1000)
        session = broker.sessions[("", "s")]
        assert [o.message.payload for o in session.queue] == [b"%d" % pid for pid in range(1, 101)]
        broker.stop()

    run(second)


def test_a_message_acknowledged_by_the_subscriber_is_not_delivered_again_after_a_crash(tmp_path):
    async def first() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(store=journal)
        sub = await durable_subscriber(broker, journal)
        sub.received()
        pub = await plain_client(broker, journal)
        pub.send(Publish("x/1", b"first", 1, packet_id=1))
        pub.send(Publish("x/1", b"second", 1, packet_id=2))
        await settle(journal)
        delivered = [p for p in sub.received() if isinstance(p, Publish)]
        sub.send(Puback(delivered[0].packet_id))
        await settle(journal)
        crash(broker)
        return clock

    clock = run(first)

    assert [o.message.payload for o in restored_inflight(tmp_path, clock)] == [b"second"]


def test_retained_messages_set_and_cleared_survive_a_crash(tmp_path):
    async def first() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(store=journal)
        pub = await plain_client(broker, journal)
        pub.send(Publish("r/kept", b"v", 1, retain=True, packet_id=1))
        pub.send(Publish("r/gone", b"v", 1, retain=True, packet_id=2))
        pub.send(Publish("r/gone", b"", 1, retain=True, packet_id=3))
        assert acks(pub, Puback) == []
        await settle(journal)
        assert acks(pub, Puback) == [1, 2, 3]
        crash(broker)
        return clock

    clock = run(first)

    async def second() -> None:
        broker, _ = make_broker(clock=clock, store=Journal(str(tmp_path)))
        assert broker.retained.get("r/kept").payload == b"v"
        assert broker.retained.get("r/gone") is None
        broker.stop()

    run(second)


def test_a_sessions_packet_ids_go_on_after_a_crash(tmp_path):
    async def first() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(store=journal)
        sub = await durable_subscriber(broker, journal)
        pub = await plain_client(broker, journal)
        for pid in range(1, 4):
            pub.send(Publish("x/1", b"%d" % pid, 1, packet_id=pid))
        await settle(journal)
        delivered = [p.packet_id for p in sub.received() if isinstance(p, Publish)]
        assert delivered == [1, 2, 3]
        for pid in delivered:
            sub.send(Puback(pid))
        await settle(journal)
        crash(broker)  # no snapshot since the session began: only the log has its ids
        return clock

    clock = run(first)

    async def second() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(clock=clock, store=journal)
        assert broker.sessions[("", "s")].pid_cursor == 4
        broker.stop()

    run(second)


def test_a_delivery_acknowledged_before_its_group_commit_writes_nothing(tmp_path):
    async def first() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(store=journal)
        sub = await durable_subscriber(broker, journal)
        sub.received()
        pub = await plain_client(broker, journal)
        pub.send(Publish("x/1", b"quick", 1, packet_id=1))
        pub.send(Publish("x/1", b"slow", 1, packet_id=2))
        quick, slow = [p for p in sub.received() if isinstance(p, Publish)]
        sub.send(Puback(quick.packet_id))  # before the write
        assert acks(pub, Puback) == []
        await settle(journal)
        assert acks(pub, Puback) == [1, 2]
        crash(broker)
        return clock

    clock = run(first)
    with open(log_path(tmp_path), "rb") as f:
        records, _ = read_records(f.read())
    assert [base64.b64decode(r[3]) for r in records if r[0] == "D"] == [b"slow"]
    assert not [r for r in records if r[0] == "A"]

    assert [o.message.payload for o in restored_inflight(tmp_path, clock)] == [b"slow"]


def test_a_queued_delivery_acknowledged_before_its_commit_writes_no_sent_record(tmp_path):
    """"P" records are made at the group commit too: one that was acknowledged by then is
    left out (its "A" says all), one still in flight keeps its packet id across a crash."""

    async def first() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(store=journal, max_inflight=1)
        sub = await durable_subscriber(broker, journal)
        pub = await plain_client(broker, journal)
        for pid in (1, 2, 3):
            pub.send(Publish("x/1", b"%d" % pid, 1, packet_id=pid))
        await settle(journal)  # three "D" records; the first one sent, two queued
        start = journal.log_bytes
        for _ in range(2):
            [sent] = [p for p in sub.received() if isinstance(p, Publish)]
            sub.send(Puback(sent.packet_id))  # the next one goes from the queue
        third = [p for p in sub.received() if isinstance(p, Publish)]
        assert [p.payload for p in third] == [b"3"]
        await settle(journal)
        with open(log_path(tmp_path), "rb") as f:
            f.seek(start)
            records, _ = read_records(f.read())
        assert [r[0] for r in records] == ["A", "A", "P"]
        assert records[2][4] == third[0].packet_id
        crash(broker)
        return clock

    clock = run(first)

    inflight = restored_inflight(tmp_path, clock)
    assert [(o.packet_id, o.message.payload) for o in inflight] == [(3, b"3")]


def test_a_delivery_restored_after_a_crash_and_then_acknowledged_stays_done_after_another(tmp_path):
    from broker.mqtt import Connect

    async def first() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock = make_broker(store=journal)
        sub = await durable_subscriber(broker, journal)
        pub = await plain_client(broker, journal)
        pub.send(Publish("x/1", b"once", 1, packet_id=1))
        await settle(journal)
        assert [p.payload for p in sub.received() if isinstance(p, Publish)] == [b"once"]
        crash(broker)  # never acknowledged by the subscriber
        return clock

    clock = run(first)

    async def second() -> FakeClock:
        journal = Journal(str(tmp_path))
        broker, clock2 = make_broker(clock=clock, store=journal)
        # Deliveries read back from the log are on disk: their acknowledgements are written.
        assert journal.pending_from == journal.next_id > 1
        peer = Peer(broker)
        peer.send(Connect(protocol_level=5, client_id="s", clean_start=False, properties=SESSION))
        await settle(journal)
        [again] = [p for p in peer.received() if isinstance(p, Publish)]
        assert again.dup and again.payload == b"once"
        peer.send(Puback(again.packet_id))
        await settle(journal)
        crash(broker)
        return clock2

    clock = run(second)

    async def third() -> None:
        journal = Journal(str(tmp_path))
        broker, _ = make_broker(clock=clock, store=journal)
        assert not broker.sessions[("", "s")].inflight
        broker.stop()

    run(third)
