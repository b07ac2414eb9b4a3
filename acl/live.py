"""Impact previews against the running broker: the live sessions it holds, judged as the
preview judges principals. The REST API and the portal both call `preview_live_impact`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker.integration.inspect_client import BrokerUnavailable, LiveSession, live_sessions
from devices.models import Tenant

from .impact import ImpactReport
from .loading import tenant_device_principals
from .models import AclRule
from .rules import ROLE_RANK, Principal
from .services import preview_impact


@dataclass(frozen=True)
class LiveImpact:
    report: ImpactReport
    sessions: list[LiveSession] | None
    """The broker's sessions of the tenant; None when the broker could not be asked."""
    live_error: str | None
    subscriptions_checked: int
    clients: dict[tuple[str, str], list[str]]
    """(principal label, filter) → the client ids holding that subscription."""


def _principal(session: LiveSession, tenant: Tenant, devices: dict[str, Principal]) -> Principal | None:
    """The principal a live session is judged as, built as acl.loading builds it for the preview."""
    if session.kind == "device" and session.device is not None:
        return devices.get(session.device)
    if session.kind == "role" and session.role in ROLE_RANK:
        return Principal.for_role(tenant.slug, str(session.role))
    if session.kind == "service" and session.service:
        return Principal.for_service(tenant.slug, session.service)
    return None


def live_subscriptions(tenant: Tenant, sessions: Iterable[LiveSession]
                       ) -> tuple[list[tuple[Principal, str, int]], dict[tuple[str, str], list[str]]]:
    """(principal, filter, QoS) once each, and the client ids holding each (principal, filter)."""
    sessions = list(sessions)
    devices: dict[str, Principal] = {}
    if any(session.kind == "device" for session in sessions):
        devices = {str(p.device): p for p in tenant_device_principals(tenant)}
    triples: dict[tuple[Principal, str, int], None] = {}
    clients: dict[tuple[str, str], list[str]] = {}
    for session in sessions:
        principal = _principal(session, tenant, devices)
        if principal is None:
            continue
        for sub in session.subscriptions:
            triples.setdefault((principal, sub.topic_filter, sub.qos))
            holders = clients.setdefault((principal.label, sub.topic_filter), [])
            if session.client_id not in holders:
                holders.append(session.client_id)
    return list(triples), clients


def preview_live_impact(tenant: Tenant, *, proposed: AclRule | None = None,
                        deleting: AclRule | None = None) -> LiveImpact:
    """`preview_impact` with the live subscriptions the running broker reports for the tenant."""
    try:
        sessions: list[LiveSession] | None = live_sessions(tenant.slug)
        live_error = None
    except BrokerUnavailable as exc:
        sessions, live_error = None, str(exc)
    triples, clients = live_subscriptions(tenant, sessions or [])
    report = preview_impact(tenant, proposed=proposed, deleting=deleting, live=triples)
    return LiveImpact(report, sessions, live_error, len(triples), clients)
