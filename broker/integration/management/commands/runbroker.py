from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import ssl
from argparse import ArgumentParser
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from broker.config import BrokerConfig, Listener
from broker.engine.broker import Broker
from broker.engine.operations import Admin
from broker.net.listener import Server

from ...authority import BRIDGE_LISTENER, PLAIN_LISTENER, SERVICE_LISTENER
from ...platform import Platform

log = logging.getLogger("roost.broker")


class PlatformServer(Server):
    """The network layer with the platform's live-reloadable TLS contexts.

    A Server has one TLS context for all its listeners; the service listener needs another
    (no client certificate), so it runs in a companion Server that shares this one's
    connection registry: shutdown, connection limits and TLS failure counts cover both.
    """

    def __init__(self, config: BrokerConfig, broker: Broker, context: ssl.SSLContext,
                 service_context: ssl.SSLContext | None = None) -> None:
        own = [listener for listener in config.listeners if listener.name != SERVICE_LISTENER]
        super().__init__(replace(config, listeners=own), broker)
        self._tls = context
        self.service: ServiceServer | None = None
        services = [listener for listener in config.listeners if listener.name == SERVICE_LISTENER]
        if services:
            if service_context is None:
                raise ValueError("the service listener needs its TLS context")
            self.service = ServiceServer(replace(config, listeners=services), broker, service_context, self)

    async def start(self) -> None:
        await super().start()
        if self.service is not None:
            try:
                await self.service.start()
            except OSError:
                for server in self._servers:
                    server.close()
                raise
            self.bound.extend(self.service.bound)
            for listener, port in self.service.bound:
                log.info("service clients (API keys) on %s", listener.url(port))

    async def shutdown(self) -> None:
        if self.service is not None:
            self.service.stop_listening()  # its connections are in our registry
        await super().shutdown()


class ServiceServer(Server):
    """The service listener (API keys): server-only TLS, connections registered with `owner`."""

    def __init__(self, config: BrokerConfig, broker: Broker, context: ssl.SSLContext, owner: Server) -> None:
        super().__init__(config, broker)
        self._tls = context
        self.protocols = owner.protocols
        self.tls_failures = owner.tls_failures
        self.batcher = owner.batcher

    def stop_listening(self) -> None:
        for server in self._servers:
            server.close()


class Command(BaseCommand):
    help = "Run the MQTT broker with the platform's mTLS, ACLs, presence and persistence."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default=settings.ROOST_BROKER_BIND,
                            help="address of the device listener (env ROOST_BROKER_BIND)")
        parser.add_argument("--port", type=int, default=settings.ROOST_BROKER_PORT,
                            help="mTLS port for devices (env ROOST_BROKER_PORT, default 8883)")
        parser.add_argument("--bridge-port", type=int, default=settings.ROOST_BROKER_BRIDGE_PORT,
                            help="loopback port of the internal bridge listener (0: none)")
        parser.add_argument("--plain-port", type=int, default=settings.ROOST_BROKER_PLAIN_PORT,
                            help="plain-TCP port on --host for signed principals only "
                                 "(env ROOST_BROKER_PLAIN_PORT, default 0: off)")
        parser.add_argument("--wss-port", type=int, default=settings.ROOST_BROKER_WSS_PORT,
                            help="MQTT over WebSocket with the same mutual TLS, on --host, for devices "
                                 "that can only reach HTTPS ports (env ROOST_BROKER_WSS_PORT, default 0: off)")
        parser.add_argument("--service-port", type=int, default=settings.ROOST_BROKER_SERVICE_PORT,
                            help="TLS port on --host for a tenant's back ends, authenticated by API key "
                                 "(user name = key prefix, password = key; no client certificate) "
                                 "(env ROOST_BROKER_SERVICE_PORT, default 0: off)")
        parser.add_argument("--metrics-port", type=int, default=settings.ROOST_BROKER_METRICS_PORT,
                            help="loopback port of the Prometheus metrics endpoint (0: none)")
        parser.add_argument("--connect-timeout", type=float, default=10.0)
        parser.add_argument("--sys-interval", type=float, default=10.0)
        parser.add_argument("--autosave-interval", type=float, default=60.0)
        parser.add_argument("--durability", choices=("ack", "interval", "none"), default="ack",
                            help="ack: QoS 1/2 messages, subscriptions and sessions of persistent "
                            "sessions and retained messages are acknowledged once on disk (journal in "
                            "ROOST_DATA_DIR/broker/); interval: journaled, synced every second; none: "
                            "saved at shutdown and every --autosave-interval (default ack)")

    def handle(self, *args: Any, **options: Any) -> None:
        listeners = [Listener(options["host"], options["port"], tls=True, name="devices")]
        if options["bridge_port"]:
            listeners.append(Listener("127.0.0.1", options["bridge_port"], name=BRIDGE_LISTENER))
        if options["wss_port"]:
            # Same certificate authentication as 8883: every listener outside TOKEN_LISTENERS.
            listeners.append(Listener(options["host"], options["wss_port"], tls=True, websocket=True,
                                      name="devices-wss"))
        if options["service_port"]:
            listeners.append(Listener(options["host"], options["service_port"], tls=True, name=SERVICE_LISTENER))
        if options["plain_port"]:
            listeners.append(Listener(options["host"], options["plain_port"], name=PLAIN_LISTENER))
            if not _is_loopback(options["host"]):
                log.warning("the plain listener on %s:%s sends tokens and messages unencrypted",
                            options["host"], options["plain_port"])
        config = BrokerConfig(
            listeners=listeners,
            connect_timeout=options["connect_timeout"],
            sys_interval=options["sys_interval"],
            autosave_interval=options["autosave_interval"],
            durability=options["durability"],
            max_queued_messages=settings.ROOST_BROKER_MAX_QUEUED,
            max_queued_bytes=settings.ROOST_BROKER_MAX_QUEUED_BYTES,
            slow_client=settings.ROOST_BROKER_SLOW_CLIENT,
            flap_max=settings.ROOST_BROKER_FLAP_MAX,
            flap_window=float(settings.ROOST_BROKER_FLAP_WINDOW),
            flap_ban=float(settings.ROOST_BROKER_FLAP_BAN),
            # The platform's own limits, safer than Mosquitto's defaults, all told in CONNACK.
            max_packet_size=1 << 20,
            max_inflight=100,
            advertise_defaults=True,
            invalid_filter_disconnects=False,
        )
        code = asyncio.run(serve(config, options["metrics_port"]))
        if code:
            raise SystemExit(code)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def serve(config: BrokerConfig, metrics_port: int) -> int:
    loop = asyncio.get_running_loop()
    platform = Platform(config)
    await asyncio.to_thread(platform.load)
    broker = platform.start_broker(loop)
    assert platform.tls_context is not None  # made by load()
    server = PlatformServer(config, broker, platform.tls_context, platform.service_tls_context)
    await platform.start_feeds(loop)
    try:
        await server.start()
    except OSError as error:
        log.error("cannot listen: %s", error)
        await platform.stop(server=None)
        return 1
    metrics = platform.serve_metrics(metrics_port, server)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await platform.stop(server=server)
    if metrics is not None:
        metrics[0].shutdown()
    log.info("stopped")
    return 0


__all__ = ["Admin", "Command", "serve"]
