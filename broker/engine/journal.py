"""The write-ahead journal: an append-only log of state changes, group-committed to disk.

Files in the persistence directory:

- `roost-broker.json`, or the name the journal is given (mosquitto.conf's
  `persistence_file`): the last snapshot (`store.Snapshot` as JSON) with its generation N.
- `roost-broker.N.log`, the snapshot's name without its extension before `.N.log`: every
  change since that snapshot, in frames of one group commit each: 4-byte length, 4-byte
  CRC32 of the body, the body (records, each a JSON array, one per line). A frame whose
  length runs past the end of the file or whose CRC does not match (a torn write, a crash
  in the middle of an append) ends the replay; the file is cut back to the last good frame.
  Nothing in a torn frame was acknowledged: acknowledgements wait for its fsync.
  The file is grown ahead of the frames in zero-filled steps (`PREALLOCATE`), so a commit
  overwrites blocks that already exist and `fdatasync` has no file size to journal: about
  half the cost of an append and fsync. Zeros end a replay as a torn frame does (a zero
  length with a zero CRC is an empty body, which is not a record).

Records are appended to a buffer on the event loop; one flusher task hands each batch to a
worker thread that writes it and calls fdatasync once for the whole batch (group commit), then
runs the callbacks waiting for anything in it (held acknowledgements: `HeldLink`). Nothing
blocks the loop, and there is no task per message. A record may be made only when its
batch is written (`append_deferred`): a message queued for a session is recorded without
the deliveries acknowledged by then, or not at all, and so is a delivery's packet id.

Compaction writes a new snapshot (temp file, fsync, rename, fsync of the directory) with
generation N+1, starts log N+1 and deletes log N. A crash at any point leaves either the
old snapshot and its complete log, or the new snapshot (which holds everything the old log
did) and a log that may be empty.

The record format names sessions by (mountpoint, client id) and messages by ids the
journal assigns, never by anything of one process or node.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import struct
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from broker.engine.store import (
    FORMAT_VERSION,
    SNAPSHOT,
    Snapshot,
    StoredDelivery,
    StoredMessage,
    StoredSession,
    StoredSubscription,
    StoredWill,
    _decode,
    _encode,
    read_snapshot,
    snapshot,
    snapshot_from_json,
    snapshot_to_json,
)

if TYPE_CHECKING:
    from broker.engine.broker import Broker

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
PREALLOCATE = 8 << 20
"""Bytes of zeros the log grows by ahead of its frames."""
_ZEROS = bytes(1 << 20)
ACK = "ack"
INTERVAL = "interval"
NONE = "none"
DURABILITY_LEVELS = (ACK, INTERVAL, NONE)


class Deferred(Protocol):
    def body(self) -> str | None: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_ENCODER = json.JSONEncoder(separators=(",", ":"))
quote = json.encoder.encode_basestring_ascii
"""A string as a JSON string (C speed), for records built by formatting."""


def record_text(record: list[Any]) -> str:
    return _ENCODER.encode(record)


def frame(record: list[Any]) -> bytes:
    """A frame of one record: length, CRC32, JSON body."""
    return frame_body(_ENCODER.encode(record).encode())


def frame_body(body: bytes) -> bytes:
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def read_records(data: bytes) -> tuple[list[list[Any]], int]:
    """The intact records at the start of `data`, and where the intact part ends."""
    records: list[list[Any]] = []
    pos = 0
    end = len(data)
    size = _HEADER.size
    while pos + size <= end:
        length, crc = _HEADER.unpack_from(data, pos)
        start = pos + size
        stop = start + length
        if stop > end:
            break
        body = data[start:stop]
        if zlib.crc32(body) != crc:
            break
        try:
            batch = [json.loads(line) for line in body.split(b"\n")]
        except ValueError:
            break
        if not all(isinstance(record, list) and record for record in batch):
            break
        records += batch
        pos = stop
    return records, pos


def _props(raw: Any) -> dict[str, Any]:
    props = dict(_decode(raw) or {})
    if "user_properties" in props:
        props["user_properties"] = [tuple(p) for p in props["user_properties"]]
    return props


class _Replay:
    """A snapshot with records applied to it, keyed for random access."""

    def __init__(self, snap: Snapshot) -> None:
        self.retained: dict[str, StoredMessage] = {m.topic: m for m in snap.retained}
        self.sessions: dict[tuple[str, str], StoredSession] = {}
        self.deliveries: dict[tuple[str, str], dict[int, StoredDelivery]] = {}
        self.last_id = 0
        legacy = -(1 << 40)
        for stored in snap.sessions:
            key = (stored.mountpoint, stored.client_id)
            self.sessions[key] = stored
            table = self.deliveries[key] = {}
            for d in (*stored.inflight, *stored.queued):
                if not d.jid:
                    # From the FileStore format: sorted before the rest, in order, and never
                    # referenced by a record.
                    legacy += 1
                    d.jid = legacy
                table[d.jid] = d
                self.last_id = max(self.last_id, d.jid)
            stored.inflight = []
            stored.queued = []

    def _numbered(self, key: tuple[str, str], packet_id: int) -> None:
        """A delivery got its packet id: the session's next one follows it, as before the crash."""
        stored = self.sessions.get(key)
        if stored is not None:
            stored.next_packet_id = packet_id % 0xFFFF + 1

    def apply(self, r: list[Any], now: float) -> None:
        kind = r[0]
        if kind == "D":
            # A message and every durable session it was queued for.
            message = StoredMessage(r[2], base64.b64decode(r[3]), r[4], r[5], _props(r[6]), r[7])
            for t in r[8]:
                table = self.deliveries.get((t[0], t[1]))
                if table is not None:
                    table[t[2]] = StoredDelivery(message, t[3], t[4], list(t[5]), t[6], False, t[2])
                    if t[6]:
                        self._numbered((t[0], t[1]), t[6])
                self.last_id = max(self.last_id, t[2])
            self.last_id = max(self.last_id, r[1])
        elif kind == "P":
            table = self.deliveries.get((r[1], r[2]))
            d = table.get(r[3]) if table is not None else None
            if d is not None:
                if not d.packet_id and r[4]:
                    self._numbered((r[1], r[2]), r[4])
                d.packet_id = r[4]
                d.released = bool(r[5])
        elif kind == "A":
            table = self.deliveries.get((r[1], r[2]))
            if table is not None:
                table.pop(r[3], None)
        elif kind == "S":
            self._session(r, now)
        elif kind == "E":
            self.sessions.pop((r[1], r[2]), None)
            self.deliveries.pop((r[1], r[2]), None)
        elif kind == "+":
            stored = self.sessions.get((r[1], r[2]))
            if stored is not None:
                subs = [s for s in stored.subscriptions if s.topic_filter != r[3]]
                subs.append(StoredSubscription(r[3], r[4], r[5], r[6], r[7], r[8], r[9]))
                stored.subscriptions = subs
        elif kind == "-":
            stored = self.sessions.get((r[1], r[2]))
            if stored is not None:
                stored.subscriptions = [s for s in stored.subscriptions if s.topic_filter != r[3]]
        elif kind == "I":
            stored = self.sessions.get((r[1], r[2]))
            if stored is not None:
                received = set(stored.qos2_received)
                if r[4]:
                    received.add(r[3])
                else:
                    received.discard(r[3])
                stored.qos2_received = sorted(received)
        elif kind == "R":
            self.retained[r[1]] = StoredMessage(r[1], base64.b64decode(r[2]), r[3], True,
                                                _props(r[4]), r[5], r[6] if len(r) > 6 else None)
        elif kind == "C":
            self.retained.pop(r[1], None)

    def _session(self, r: list[Any], now: float) -> None:
        key = (r[1], r[2])
        stored = self.sessions.get(key)
        # A session connected when the broker died counts as disconnected at replay.
        disconnected_at = now if r[7] is None else r[7]
        will = None
        if r[8] is not None:
            w = r[8]
            will = StoredWill(w[0], base64.b64decode(w[1]), w[2], w[3], _props(w[4]), w[5])
        if stored is None:
            stored = self.sessions[key] = StoredSession(r[2], r[1], r[3], r[5], r[6],
                                                        disconnected_at)
            self.deliveries[key] = {}
        stored.principal = r[3]
        stored.attributes = dict(r[4])
        stored.protocol_level = r[5]
        stored.expiry_interval = r[6]
        stored.disconnected_at = disconnected_at
        stored.will = will

    def result(self) -> Snapshot:
        snap = Snapshot(retained=list(self.retained.values()))
        for key, stored in self.sessions.items():
            for jid in sorted(self.deliveries[key]):
                d = self.deliveries[key][jid]
                (stored.inflight if d.packet_id else stored.queued).append(d)
            snap.sessions.append(stored)
        return snap


class Journal:
    """The Store of a broker that logs every change (see the module docstring).

    `level` is ACK (acknowledgements wait for the fsync of what they acknowledge) or
    INTERVAL (the log is written and fsynced every `interval` seconds; acknowledgements do
    not wait).
    """

    def __init__(self, directory: str, level: str = ACK, interval: float = 1.0,
                 compact_bytes: int = 64 << 20, filename: str = SNAPSHOT) -> None:
        if level not in (ACK, INTERVAL):
            raise ValueError(f"a journal has durability ack or interval, not {level!r}")
        self.directory = directory
        self.filename = filename
        self._stem = os.path.splitext(filename)[0] or filename
        self._log_name = re.compile(rf"^{re.escape(self._stem)}\.(\d+)\.log$")
        self.level = level
        self.holds = level == ACK
        self.interval = interval
        self.compact_bytes = compact_bytes
        self.generation = 0
        self.replaying = False
        self.seq = 0
        """Records appended so far."""
        self.durable_seq = 0
        """Records known to be on disk."""
        self.next_id = 1
        self.log_bytes = 0
        self.snapshot_bytes = 0
        self.batches = 0
        # Records not yet written: JSON text, or an object whose body() makes it at the write.
        self._buffer: list[str | Deferred] = []
        self.pending_from = 1
        """Journal ids from this one on were given since the last write began."""
        self._unwritten = b""  # a frame whose write failed, written first next time
        self._waiters: deque[tuple[int, Callable[[], None]]] = deque()
        self._fd = -1
        self._allocated = 0  # size of the log file: frames up to log_bytes, zeros after
        self._lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._broker: Broker | None = None
        self._closed = False

    # ---- Store -------------------------------------------------------------------

    def load(self) -> Snapshot:
        """Read the snapshot and replay its log; cut a torn tail; open the log to append."""
        os.makedirs(self.directory, exist_ok=True)
        base = Snapshot()
        text = read_snapshot(os.path.join(self.directory, self.filename))
        if text is not None:
            self.snapshot_bytes = len(text)
            self.generation = int(json.loads(text).get("generation", 0))
            base = snapshot_from_json(text)
        replay = _Replay(base)
        log_path = self._log_path(self.generation)
        records = 0
        try:
            with open(log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        if data:
            parsed, good = read_records(data)
            now = time.time()
            for record in parsed:
                try:
                    replay.apply(record, now)
                except (IndexError, KeyError, TypeError, ValueError):
                    logger.warning("skipped a malformed journal record %.80r", record)
            records = len(parsed)
            if data.count(0, good) != len(data) - good:
                logger.warning("journal %s: ignored %d bytes of a torn or corrupt tail",
                               log_path, len(data.rstrip(b"\0")) - good)
                os.truncate(log_path, good)  # zeros (preallocated, not torn) may stay
                data = data[:good]
            self.log_bytes = good
        for name in os.listdir(self.directory):
            match = self._log_name.match(name)
            if match and int(match.group(1)) != self.generation:
                os.unlink(os.path.join(self.directory, name))
        self.next_id = self.pending_from = replay.last_id + 1
        self._open_log(log_path, len(data))
        _fsync_dir(self.directory)
        logger.info("journal: replayed %d record(s) of generation %d", records, self.generation)
        self.replaying = True  # until `start`: the broker restores what we return
        return replay.result()

    def save(self, snap: Snapshot) -> None:
        """At shutdown: everything buffered, then a snapshot, so the next start is quick."""
        self.close(snap)

    # ---- running -----------------------------------------------------------------

    def start(self, broker: Broker, loop: asyncio.AbstractEventLoop) -> None:
        self._broker = broker
        self.replaying = False
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run())

    def new_id(self) -> int:
        value = self.next_id
        self.next_id = value + 1
        return value

    def append(self, record: list[Any]) -> None:
        if not (self.replaying or self._closed):
            self._push(_ENCODER.encode(record))

    def append_deferred(self, record: Deferred) -> None:
        """A record made when its group commit is written (it may have become nothing)."""
        if not (self.replaying or self._closed):
            self._push(record)

    def append_body(self, body: str) -> None:
        """A record already encoded as a JSON array (the hot path's small records)."""
        if not (self.replaying or self._closed):
            self._push(body)

    def _push(self, item: str | Deferred) -> None:
        self._buffer.append(item)
        self.seq += 1
        wake = self._wake
        if wake is not None and self.holds and not wake.is_set():
            wake.set()

    def when_durable(self, seq: int, callback: Callable[[], None]) -> None:
        """Call `callback` (on the loop) once the first `seq` records are on disk."""
        if seq <= self.durable_seq:
            callback()
            return
        self._waiters.append((seq, callback))

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        loop = asyncio.get_running_loop()
        while not self._closed:
            if self.holds:
                await wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.interval)
            wake.clear()
            if not self._buffer and not self._unwritten:
                continue
            data = self._unwritten + self._frame_buffer()
            self._unwritten = b""
            seq = self.seq
            rotate = None
            if self.log_bytes + len(data) > max(self.compact_bytes, 2 * self.snapshot_bytes):
                assert self._broker is not None
                # Taken on the loop: it holds every change up to `seq`, so the old log's
                # unwritten tail need not be written at all.
                rotate = snapshot(self._broker)
            try:
                await loop.run_in_executor(None, self._write, data, rotate)
            except Exception:
                # Nothing is acknowledged that is not on disk: retry, and say so loudly.
                logger.exception("journal write failed; acknowledgements stay held")
                self._unwritten = data
                await asyncio.sleep(1.0)
                wake.set()
                continue
            self.batches += 1
            self.durable_seq = seq
            waiters = self._waiters
            while waiters and waiters[0][0] <= seq:
                _, callback = waiters.popleft()
                try:
                    callback()
                except Exception:
                    logger.exception("journal callback failed")

    def _write(self, data: bytes, rotate: Snapshot | None) -> None:
        """Worker thread: append and fsync, or compact."""
        with self._lock:
            if self._closed:
                return
            if rotate is not None:
                self._compact(rotate)
                return
            self._append(data)

    def _compact(self, snap: Snapshot) -> None:
        """Caller holds the lock."""
        old = self.generation
        new = old + 1
        self.snapshot_bytes = write_snapshot(self.directory, snap, new, self.filename)
        os.close(self._fd)
        self.log_bytes = 0
        self._open_log(self._log_path(new), 0)
        _fsync_dir(self.directory)
        self.generation = new
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._log_path(old))

    def close(self, snap: Snapshot | None = None) -> None:
        """Stop the flusher; write a final snapshot when given one."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        with self._lock:
            if self._closed or self._fd < 0:
                return
            if snap is not None:
                self._compact(snap)
            else:
                self._append(self._unwritten + self._frame_buffer())
            self._buffer.clear()
            os.close(self._fd)
            self._fd = -1
            self._closed = True

    def _open_log(self, path: str, size: int) -> None:
        """Open a log to write frames from `log_bytes` on; `size` is what the file holds."""
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._allocated = size

    def _append(self, data: bytes) -> None:
        """Caller holds the lock. Write at the end of the frames and fdatasync. A failed
        write moves nothing: its retry (which starts with the same bytes) writes over it,
        so a partial frame never sits in front of a good one."""
        fd = self._fd
        start = self.log_bytes
        end = start + len(data)
        if end > self._allocated:
            self._grow(end)
        view = memoryview(data)
        pos = start
        while view:
            written = os.pwrite(fd, view, pos)
            view = view[written:]
            pos += written
        os.fdatasync(fd)
        self.log_bytes = end

    def _grow(self, needed: int) -> None:
        """Zero-fill the log past `needed` and make the new size durable (an fsync per
        PREALLOCATE bytes of log, not per commit)."""
        fd = self._fd
        size = self._allocated
        target = needed + PREALLOCATE
        while size < target:
            chunk = min(len(_ZEROS), target - size)
            size += os.pwrite(fd, memoryview(_ZEROS)[:chunk], size)
        os.fsync(fd)
        self._allocated = size

    def _frame_buffer(self) -> bytes:
        """The buffered records as one frame (one CRC and header per group commit)."""
        buffer = self._buffer
        self.pending_from = self.next_id
        if not buffer:
            return b""
        lines = [item if type(item) is str else item.body() for item in buffer]  # type: ignore[union-attr]
        buffer.clear()
        text = "\n".join([line for line in lines if line is not None])
        return frame_body(text.encode()) if text else b""

    def _log_path(self, generation: int) -> str:
        return os.path.join(self.directory, f"{self._stem}.{generation}.log")


def write_snapshot(directory: str, snap: Snapshot, generation: int, filename: str = SNAPSHOT) -> int:
    text = snapshot_to_json(snap)
    # Keep the FileStore format; the generation says which log continues it.
    text = text[:-1] + f',"generation":{generation}}}'
    assert json.loads(text)["format"] == FORMAT_VERSION
    fd, tmp = tempfile.mkstemp(prefix=".roost-broker-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(directory, filename))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return len(text)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- record builders (called by the engine) ------------------------------------------


def message_record(mid: int, stored: StoredMessage) -> list[Any]:
    return ["M", mid, stored.topic, _b64(stored.payload), stored.qos, stored.retain,
            _encode(stored.properties), stored.expires_at]


def will_record(will: StoredWill | None) -> list[Any] | None:
    if will is None:
        return None
    return [will.topic, _b64(will.payload), will.qos, will.retain, _encode(will.properties),
            will.due_at]


class _Owner(Protocol):
    link: Any


class HeldLink:
    """A Link whose writes wait, in order, until the journal has what they acknowledge.

    `hold()` marks everything appended so far as needed before anything written from now
    on may go out; writes are kept in a list and released by one journal callback. While
    nothing is held the owner (a Connection) writes to the transport itself: the gate is
    its `link` only from `hold()` until the release, so an unheld write costs no extra call.
    """

    __slots__ = ("link", "journal", "owner", "pending", "until", "closing", "waiting")

    def __init__(self, link: Any, journal: Journal, owner: _Owner) -> None:
        self.link = link
        self.journal = journal
        self.owner = owner
        self.pending: list[bytes | bytearray] | None = None
        self.until = 0
        self.closing = False
        self.waiting = False

    def __getattr__(self, name: str) -> Any:
        # listener, remote_address, peer_certificates: the transport's, read live.
        return getattr(self.link, name)

    def hold(self) -> None:
        journal = self.journal
        seq = journal.seq
        if seq <= journal.durable_seq or seq <= self.until:
            return
        self.until = seq
        if self.pending is None:
            self.pending = []
            self.owner.link = self
        if not self.waiting:
            self.waiting = True
            journal.when_durable(seq, self._release)

    def _release(self) -> None:
        self.waiting = False
        journal = self.journal
        if self.until > journal.durable_seq:
            self.waiting = True
            journal.when_durable(self.until, self._release)
            return
        pending = self.pending
        if pending is None:
            return  # aborted meanwhile
        self.pending = None
        link = self.link
        self.owner.link = link
        for data in pending:
            link.write(data)
        if self.closing:
            link.close()

    def write(self, data: bytes | bytearray) -> None:
        pending = self.pending
        if pending is None:
            self.link.write(data)
        else:
            pending.append(data)

    def close(self) -> None:
        if self.pending is None:
            self.link.close()
        else:
            self.closing = True

    def abort(self) -> None:
        self.pending = None
        self.owner.link = self.link
        self.link.abort()

    def pause_reading(self) -> None:
        self.link.pause_reading()

    def resume_reading(self) -> None:
        self.link.resume_reading()

    def buffered(self) -> int:
        return int(self.link.buffered())
