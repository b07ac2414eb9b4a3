"""Tails the change-event outbox so the broker applies registry changes live.

A dedicated thread waits for changes (LISTEN/NOTIFY on PostgreSQL, a short poll on SQLite),
reads the new outbox rows, lets the caller reload what they name (database work stays in
this thread), and hands the result to the event loop. Nothing here runs per message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.db import close_old_connections, connection

from devices.changes import NOTIFY_CHANNEL, changes_after
from devices.models import ChangeEvent

log = logging.getLogger("roost.broker.changefeed")

T = TypeVar("T")


class ChangeFeed(Generic[T]):
    """Runs `prepare(events)` in a thread for each batch and `apply(result)` on the loop."""

    def __init__(
        self,
        *,
        start_after: int,
        prepare: Callable[[list[ChangeEvent]], T],
        apply: Callable[[T, int], None],
        poll_interval: float = 0.2,
        pg_fallback_interval: float = 2.0,
    ) -> None:
        self.last_id = start_after
        self._prepare = prepare
        self._apply = apply
        self._poll_interval = poll_interval
        self._pg_fallback_interval = pg_fallback_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listen_conn: Any = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="roost-changefeed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def catch_up(self) -> T | None:
        """Read and prepare every pending row now (used at start, before accepting clients)."""
        events = self._fetch_all()
        if not events:
            return None
        result = self._prepare(events)
        self.last_id = events[-1].id
        return result

    def _fetch_all(self) -> list[ChangeEvent]:
        events: list[ChangeEvent] = []
        while True:
            batch = changes_after(events[-1].id if events else self.last_id)
            if not batch:
                return events
            events.extend(batch)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wait_for_change()
                if self._stop.is_set():
                    break
                try:
                    close_old_connections()
                    events = self._fetch_all()
                    if not events:
                        continue
                    result = self._prepare(events)
                    last = events[-1].id
                    self.last_id = last
                    assert self._loop is not None
                    self._loop.call_soon_threadsafe(self._apply, result, last)
                except Exception:
                    # A failed batch is retried on the next wake-up; last_id did not move.
                    log.exception("applying changes from the outbox failed; retrying")
                    self._stop.wait(1.0)
        finally:
            self._close_listener()
            connection.close()

    def _wait_for_change(self) -> None:
        if connection.vendor != "postgresql":
            self._stop.wait(self._poll_interval)
            return
        try:
            if self._listen_conn is None:
                self._listen_conn = self._open_listener()
            # Returns on the first NOTIFY or after the fallback interval, whichever comes first.
            for _ in self._listen_conn.notifies(timeout=self._pg_fallback_interval, stop_after=1):
                pass
        except Exception:
            log.warning("LISTEN connection lost; polling until it is back", exc_info=True)
            self._close_listener()
            self._stop.wait(self._poll_interval)

    def _open_listener(self) -> Any:
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        conn = psycopg.connect(**params, autocommit=True)
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return conn

    def _close_listener(self) -> None:
        if self._listen_conn is not None:
            try:
                self._listen_conn.close()
            finally:
                self._listen_conn = None
