"""The broker's Store on the database: retained messages from their table, sessions as one blob.

Retained messages are written incrementally by the write-behind hooks, so `save` only
writes the persistent sessions. Django refuses database calls on the event loop's thread,
so loading happens in a worker thread before the broker starts (`preload`) and saving is
handed to a single background thread (`close` waits for it).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from django.db import close_old_connections

from broker.engine.store import Snapshot, StoredMessage, snapshot_from_json, snapshot_to_json

from .models import BrokerState, RetainedMessage

log = logging.getLogger("roost.broker.store")

SESSIONS_KEY = "sessions"


class DatabaseStore:
    def __init__(self) -> None:
        self._loaded: Snapshot | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roost-store")
        self._pending: Future[None] | None = None

    def preload(self) -> None:
        """Read everything `load` will return (worker thread)."""
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
        self._loaded = snap

    def load(self) -> Snapshot:
        if self._loaded is None:
            raise RuntimeError("DatabaseStore.preload() must run before the broker starts")
        snap, self._loaded = self._loaded, None
        return snap

    def save(self, snapshot: Snapshot) -> None:
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
