"""The platform broker's Store: the engine's journal on disk, the database for the portal.

At durability "ack" (the default) or "interval", persistent sessions and retained messages
live in the same write-ahead journal as the standalone broker's (`broker.engine.journal`),
in ROOST_DATA_DIR/broker/: acknowledged means durable, and the log names sessions by
tenant mountpoint and client id, nothing of this node. The database keeps what the portal
reads: retained messages (written by the write-behind hooks) and, at shutdown, the
sessions blob. On the first start with an empty journal directory, retained messages and
sessions come from the database as before. At durability "none": retained messages from
their table and sessions as one blob, saved at shutdown and every autosave interval.

Django refuses database calls on the event loop's thread, so loading happens in a worker
thread before the broker starts (`preload`) and saving is handed to a single background
thread (`close` waits for it).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from django.conf import settings
from django.db import close_old_connections

from broker.engine.journal import NONE, Journal, write_snapshot
from broker.engine.store import (
    SNAPSHOT,
    Snapshot,
    StoredMessage,
    snapshot_from_json,
    snapshot_to_json,
)

from .models import BrokerState, RetainedMessage

log = logging.getLogger("roost.broker.store")

SESSIONS_KEY = "sessions"


class DatabaseStore:
    def __init__(self, durability: str = "ack", directory: str | None = None) -> None:
        self.journal: Journal | None = None
        if durability != NONE:
            self.journal = Journal(directory or os.path.join(settings.ROOST_DATA_DIR, "broker"),
                                   durability)
        self._loaded: Snapshot | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roost-store")
        self._pending: Future[None] | None = None

    def preload(self) -> None:
        """Read everything `load` will return (worker thread)."""
        journal = self.journal
        if journal is not None and _has_state(journal.directory):
            self._loaded = journal.load()
            return
        snap = Snapshot()
        now = datetime.now(UTC)
        # Disabled tenants' messages are loaded too: no one of theirs can connect meanwhile,
        # and enabling the tenant again (live, without a restart) must find its state here.
        rows = RetainedMessage.objects.select_related("tenant")
        for row in rows.iterator(chunk_size=2000):
            if row.expires_at is not None and row.expires_at <= now:
                continue
            props = dict(row.properties or {})
            if "user_properties" in props:
                props["user_properties"] = [tuple(pair) for pair in props["user_properties"]]
            snap.retained.append(StoredMessage(
                topic=f"{row.tenant.slug}/{row.topic}", payload=bytes(row.payload), qos=row.qos, retain=True,
                properties=props, expires_at=row.expires_at.timestamp() if row.expires_at else None,
            ))
        state = BrokerState.objects.filter(key=SESSIONS_KEY).first()
        if state is not None and state.blob:
            snap.sessions = snapshot_from_json(bytes(state.blob).decode()).sessions
        if journal is not None:
            # The database's state becomes the journal's first snapshot.
            os.makedirs(journal.directory, exist_ok=True)
            write_snapshot(journal.directory, snap, 0)
            snap = journal.load()
        self._loaded = snap

    def load(self) -> Snapshot:
        if self._loaded is None:
            raise RuntimeError("DatabaseStore.preload() must run before the broker starts")
        snap, self._loaded = self._loaded, None
        return snap

    def save(self, snapshot: Snapshot) -> None:
        if self.journal is not None:
            self.journal.save(snapshot)
        # Serialised on the loop (the snapshot is a consistent copy); written in the thread.
        blob = snapshot_to_json(Snapshot(sessions=snapshot.sessions)).encode()
        self._pending = self._executor.submit(self._write, blob)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    @staticmethod
    def _write(blob: bytes) -> None:
        try:
            close_old_connections()
            BrokerState.objects.update_or_create(key=SESSIONS_KEY, defaults={"blob": blob})
        except Exception:
            log.exception("saving broker sessions failed")


def _has_state(directory: str) -> bool:
    """Whether a journal was kept in `directory` (a snapshot or a log)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return False
    return any(name == SNAPSHOT or name.endswith(".log") for name in names)
