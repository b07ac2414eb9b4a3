"""Prometheus metrics of the broker, read from its counters when scraped (no per-message cost).

The loopback HTTP server here serves `/metrics` and, beside it, the signed session view of
`inspect.py` (`/sessions`): one port, one server, WSGI apps routed by path.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from broker.engine.broker import Broker
from broker.engine.flapping import detector_for
from broker.engine.queues import DROP_QUEUE_FULL, DROP_SLOW_CLIENT, DROP_TOO_LARGE

from .authority import PlatformAuthority
from .inspect import StartResponse, WsgiApp
from .writebehind import WriteBehind

log = logging.getLogger("roost.broker.metrics")


class BrokerCollector(Collector):
    def __init__(self, broker: Broker, authority: PlatformAuthority, writer: WriteBehind,
                 tls_failures: Counter[str]) -> None:
        self.broker = broker
        self.authority = authority
        self.writer = writer
        self.tls_failures = tls_failures

    def collect(self) -> Iterator[Any]:
        broker, stats = self.broker, self.broker.stats
        connected = sum(1 for s in broker.sessions.values() if s.conn is not None)
        yield GaugeMetricFamily("roost_broker_connections", "Clients connected now.", value=connected)
        yield GaugeMetricFamily("roost_broker_sessions", "Sessions held, connected or not.",
                                value=len(broker.sessions))
        yield GaugeMetricFamily("roost_broker_retained_messages", "Retained messages held.",
                                value=broker.retained.count)
        yield CounterMetricFamily("roost_broker_connections_accepted", "Clients accepted since start.",
                                  value=stats.clients_total)
        yield CounterMetricFamily("roost_broker_messages_received", "PUBLISH packets received.",
                                  value=stats.messages_received)
        yield CounterMetricFamily("roost_broker_messages_sent", "PUBLISH packets sent.",
                                  value=stats.messages_sent)
        yield CounterMetricFamily("roost_broker_bytes_received", "Bytes received.", value=stats.bytes_received)
        yield CounterMetricFamily("roost_broker_bytes_sent", "Bytes sent.", value=stats.bytes_sent)
        drops = CounterMetricFamily("roost_broker_messages_dropped",
                                    "Messages not delivered to a subscriber, by reason (queue_full: "
                                    "its QoS 1/2 queue was at its limit; slow_client: QoS 0 to a "
                                    "backed-up socket; packet_too_large: over its Maximum Packet Size).",
                                    labels=["reason"])
        for reason in (DROP_QUEUE_FULL, DROP_SLOW_CLIENT, DROP_TOO_LARGE):
            drops.add_metric([reason], stats.drops.get(reason, 0))
        yield drops
        refusals = CounterMetricFamily("roost_broker_authentication_failures",
                                       "Connections refused, by reason.", labels=["reason"])
        for reason, count in sorted(self.authority.refusals.items()):
            refusals.add_metric([reason], count)
        yield refusals
        handshakes = CounterMetricFamily("roost_broker_tls_handshake_failures",
                                         "TLS handshakes refused before MQTT, by reason "
                                         "(unknown CA, certificate expired, no client certificate, ...).",
                                         labels=["reason"])
        for reason, count in sorted(self.tls_failures.items()):
            handshakes.add_metric([reason], count)
        yield handshakes
        flaps = detector_for(broker)
        yield CounterMetricFamily("roost_broker_flapping_refusals",
                                  "CONNECTs refused (0x9F) because their identity connected too often.",
                                  value=flaps.refused)
        yield CounterMetricFamily("roost_broker_flapping_bans", "Identities banned for flapping.",
                                  value=flaps.bans)
        denials = CounterMetricFamily("roost_broker_acl_denials", "ACL denials, by action.", labels=["action"])
        for action, count in sorted(self.authority.denials.items()):
            denials.add_metric([action], count)
        yield denials
        yield GaugeMetricFamily("roost_broker_writes_pending", "Rows waiting for the next database flush.",
                                value=self.writer.pending)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    # A slow scrape or session read must not hold up the next request; worker threads die
    # with the process instead of being joined at exit.
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)


def _router(routes: dict[str, WsgiApp]) -> WsgiApp:
    def route(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        app = routes.get(environ.get("PATH_INFO") or "/")
        if app is None:
            body = b"Not found: try /metrics\n"
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return route


def serve_metrics(collector: BrokerCollector, host: str, port: int, *,
                  sessions: WsgiApp | None = None) -> tuple[WSGIServer, threading.Thread]:
    """Serve `/metrics` (and `/sessions` when given) on host:port from a thread; returns
    (server, thread), and `server.shutdown()` stops it."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    routes: dict[str, WsgiApp] = {"/metrics": make_wsgi_app(registry)}
    if sessions is not None:
        routes["/sessions"] = sessions
    server = make_server(host, port, _router(routes), server_class=_ThreadingServer, handler_class=_Handler)
    thread = threading.Thread(target=server.serve_forever, name="broker-metrics", daemon=True)
    thread.start()
    return server, thread
