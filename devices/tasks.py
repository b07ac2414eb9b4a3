"""Background work of the registry: bulk imports and housekeeping."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .imports import claim_job, prune_jobs, run_job
from .models import ChangeEvent

# The broker catches up from the outbox after downtime; a week covers any sane outage.
CHANGE_EVENT_RETENTION = timedelta(days=7)


@shared_task
def prune_change_events() -> int:
    cutoff = timezone.now() - CHANGE_EVENT_RETENTION
    deleted, _ = ChangeEvent.objects.filter(created__lt=cutoff).delete()
    return deleted


@shared_task
def run_import(job_id: str) -> str:
    """Run one import job. A job is claimed with a conditional UPDATE (pending -> running), so a
    message delivered twice, or to two workers, runs it once."""
    job = claim_job(job_id)
    if job is None:
        return "not pending"
    return run_job(job).state


@shared_task
def prune_import_jobs() -> int:
    """Fail imports whose worker died; delete old jobs with their files (bundles hold private keys)."""
    return prune_jobs()
