"""Assembles the broker on the platform: identities, ACLs, TLS, store, hooks, change feed."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any

from django.conf import settings

from acl.loading import TenantRules, load_all_rules
from broker.config import BrokerConfig
from broker.engine.broker import Broker
from broker.engine.operations import Admin
from devices.changes import latest_change_id
from devices.models import Device
from pki.broker import (
    client_crl_bundle,
    ensure_broker_server_certificate,
    refresh_crls,
    trusted_client_ca_bundle,
)

from .authority import SERVICE_LISTENER, PlatformAuthority
from .changefeed import ChangeFeed
from .identities import MOUNT_LEVELS, IdentityIndex
from .inspect import SessionInspector
from .live import Changes, LiveEffects, prepare
from .metrics import BrokerCollector, serve_metrics
from .models import BrokerState
from .presence import PresenceHooks
from .store import DatabaseStore
from .tls import DeviceTls, TlsReloader, service_server_context
from .traffic import TrafficMeter
from .writebehind import PresenceRow, WriteBehind

if TYPE_CHECKING:
    from broker.net.listener import Server

log = logging.getLogger("roost.broker")

CURSOR_KEY = "changefeed"
CRL_REFRESH_INTERVAL = 3600.0
"""Seconds between checks for CRLs due to be re-signed (half-way through their lifetime)."""


class Platform:
    def __init__(self, config: BrokerConfig) -> None:
        config.mount_levels = MOUNT_LEVELS
        self.config = config
        self.identities = IdentityIndex()
        self.rules: dict[str, TenantRules] = {}
        self.authority = PlatformAuthority(self.identities, self.rules)
        self.store = DatabaseStore(config.durability)
        self.traffic = TrafficMeter()
        self.writer = WriteBehind(interval=settings.ROOST_BROKER_FLUSH_INTERVAL)
        self.device_tls: DeviceTls | None = None
        self.tls_context: ssl.SSLContext | None = None
        self.service_tls_context: ssl.SSLContext | None = None
        self._key_expiry: asyncio.Task[None] | None = None
        self._crl_refresh: asyncio.Task[None] | None = None
        self.broker: Broker | None = None
        self.admin: Admin | None = None
        self.live: LiveEffects | None = None
        self.feed: ChangeFeed[Changes] | None = None
        self._start_after = 0
        self._stale_online: list[int] = []

    def load(self) -> None:
        """Everything from the database, before a single client is accepted (worker thread)."""
        chain, key = ensure_broker_server_certificate()
        self.device_tls = DeviceTls(str(chain), str(key), trusted_client_ca_bundle(), client_crl_bundle())
        self.tls_context = self.device_tls.context
        if any(listener.name == SERVICE_LISTENER for listener in self.config.listeners):
            self.service_tls_context = service_server_context(str(chain), str(key))
        # Read the cursor first: rows committed while we load are then applied twice, which
        # is harmless, and none is missed. Rows since the previous broker stopped are replayed
        # too: most only repeat what the load reads, but some exist only as outbox rows (a
        # retained message cleared from the portal while the broker was down).
        latest = latest_change_id()
        saved = BrokerState.objects.filter(key=CURSOR_KEY).values_list("value", flat=True).first()
        resume = saved.get("last_id") if isinstance(saved, dict) else None
        self._start_after = min(int(resume), latest) if isinstance(resume, int) else latest
        self.identities.load_all()
        self.rules.update(load_all_rules())
        self.store.preload()
        self._stale_online = list(Device.objects.filter(online=True).values_list("pk", flat=True))

    def start_broker(self, loop: asyncio.AbstractEventLoop) -> Broker:
        broker = Broker(self.config, loop, self.authority, self.authority, self.store)
        self.broker = broker
        self.admin = Admin(broker)
        presence = PresenceHooks(broker, self.identities, self.writer)
        presence.install()
        self.traffic.install(broker)
        broker.start()
        # Sessions restored from storage are held to today's rules before anyone reconnects.
        dropped = self.admin.recheck_subscriptions()
        if dropped:
            log.info("dropped %d restored subscription(s) the current ACLs no longer allow", dropped)
        for device_id in self._stale_online:
            # Whatever was online when the previous broker stopped is not connected now; when
            # it was last seen, and from where, stays as the old process last wrote it.
            self.writer.presence(device_id, PresenceRow(False, None, None, None))
            presence.announce_offline(device_id, "broker_restarted")
        self.live = LiveEffects(self.identities, self.authority, self.admin,
                                retained_cleared=self.writer.retained_clear,
                                tls=self._tls_reloader())
        return broker

    def _tls_reloader(self) -> TlsReloader | None:
        if self.device_tls is None:
            return None
        others = (self.service_tls_context,) if self.service_tls_context is not None else ()
        return TlsReloader(self.device_tls, *others)

    async def start_feeds(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.live is not None
        self.feed = ChangeFeed(start_after=self._start_after, prepare=prepare, apply=self._apply,
                               poll_interval=settings.ROOST_BROKER_POLL_INTERVAL)
        pending = await asyncio.to_thread(self.feed.catch_up)
        if pending is not None:
            self.live.apply(pending)
        self.feed.start(loop)
        self.writer.start()
        if self.service_tls_context is not None:
            self._key_expiry = loop.create_task(self.live.watch_key_expiry())
        if self.tls_context is not None:
            self._crl_refresh = loop.create_task(self._keep_crls_current())

    async def _keep_crls_current(self, interval: float = CRL_REFRESH_INTERVAL) -> None:
        """Re-sign CRLs that are half-way to their nextUpdate, even with no Celery beat running:
        an expired CRL would fail the handshake of every device of its CA. The new CRLs reach
        the TLS context through the change feed ("crl" events)."""
        while True:
            await asyncio.sleep(interval)
            try:
                count = await asyncio.to_thread(refresh_crls)
            except Exception:
                log.exception("refreshing CRLs failed")
            else:
                if count:
                    log.info("re-signed %d CRL(s)", count)

    def _apply(self, changes: Changes, last_id: int) -> None:
        assert self.live is not None
        try:
            self.live.apply(changes)
        except Exception:
            log.exception("applying changes up to outbox row %d failed", last_id)

    def serve_metrics(self, port: int, server: Server) -> Any:
        if not port or self.broker is None:
            return None
        collector = BrokerCollector(self.broker, self.authority, self.writer, server.tls_failures)
        # Beside /metrics: the signed, loopback-only view of live sessions (inspect.py).
        sessions = SessionInspector(self.broker, asyncio.get_running_loop(), traffic=self.traffic)
        endpoint = serve_metrics(collector, "127.0.0.1", port, sessions=sessions)
        log.info("metrics on http://127.0.0.1:%d/metrics", port)
        return endpoint

    async def stop(self, server: Server | None) -> None:
        self.traffic.stop()
        if server is not None:
            await server.shutdown()  # also stops the broker, which saves sessions
        elif self.broker is not None:
            self.broker.stop()
        if self.feed is not None:
            self.feed.stop()
        for task in (self._key_expiry, self._crl_refresh):
            if task is not None:
                task.cancel()
        await self.writer.stop()
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self.store.close()
        if self.feed is not None:
            BrokerState.objects.update_or_create(key=CURSOR_KEY, defaults={"value": {"last_id": self.feed.last_id}})
