"""Periodic PKI work (scheduled from settings.CELERY_BEAT_SCHEDULE, see the "# --- PKI ---" block)."""

from __future__ import annotations

from celery import shared_task

from . import broker, revocation


@shared_task
def refresh_crls() -> int:
    """Re-sign each CA's CRL well before its nextUpdate."""
    return revocation.refresh_crls()


@shared_task
def mark_expired_certificates() -> int:
    return revocation.mark_expired_certificates()


@shared_task
def rotate_expiring_issuing_cas() -> int:
    return revocation.rotate_expiring_issuing_cas()


@shared_task
def renew_broker_server_certificate() -> str:
    """Keeps the broker's certificate fresh even when the broker runs for months without restarting."""
    return str(broker.ensure_broker_server_certificate().chain_path)
