"""Prometheus metrics of the broker, read from its counters when scraped (no per-message cost)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from broker.engine.broker import Broker

from .authority import PlatformAuthority
from .writebehind import WriteBehind


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
        yield CounterMetricFamily("roost_broker_messages_dropped", "Messages dropped (queues full, slow clients).",
                                  value=stats.dropped)
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
        denials = CounterMetricFamily("roost_broker_acl_denials", "ACL denials, by action.", labels=["action"])
        for action, count in sorted(self.authority.denials.items()):
            denials.add_metric([action], count)
        yield denials
        yield GaugeMetricFamily("roost_broker_writes_pending", "Rows waiting for the next database flush.",
                                value=self.writer.pending)


def serve_metrics(collector: BrokerCollector, host: str, port: int) -> tuple[Any, Any]:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return start_http_server(port, addr=host, registry=registry)
